include:
  - kubernetes.pool.kubelet
  - kubernetes.pool.kube_proxy
