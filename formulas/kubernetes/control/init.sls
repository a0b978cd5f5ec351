{#- kubernetes.control: the OpenStack service-roles of kubernetes:control:service. Their
    objects are built with every other cluster object (stacksalt_objects), written by
    kubernetes.master.objects and applied in the one plan by kubernetes.master.apply. #}
include:
  - kubernetes.master.objects
  - kubernetes.master.apply
