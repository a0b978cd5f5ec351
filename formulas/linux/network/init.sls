include:
  - linux.network.hosts
