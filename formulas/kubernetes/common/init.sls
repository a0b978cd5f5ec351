include:
  - kubernetes.common.binaries
  - kubernetes.common.kernel
  - kubernetes.common.pki
  - kubernetes.common.runtime
  - kubernetes.common.containerd
