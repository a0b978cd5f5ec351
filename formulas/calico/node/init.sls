{#- Calico on this node: its etcd client certificate, the CNI configuration, calicoctl's
    configuration (and binary). Calico's Kubernetes objects and resources are built from
    calico:node by the stacksalt_objects module and written and applied on the masters
    with the cluster's other objects (kubernetes.master.objects / .apply). #}
include:
  - calico.node.certificates
  - calico.node.cni
  - calico.node.calicoctl
