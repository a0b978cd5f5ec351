include:
  - calico.node.certificates
  - calico.node.cni
  - calico.node.calicoctl
  - calico.node.addons
  - calico.node.resources
