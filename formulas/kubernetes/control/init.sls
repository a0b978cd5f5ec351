{#- kubernetes.control: the OpenStack service-roles rendered as Kubernetes objects
    (manifests) and applied in the order of their plan (apply; it decides itself whether
    to apply: kubernetes:control:apply, and only on one master). #}
include:
  - kubernetes.control.manifests
  - kubernetes.control.apply
