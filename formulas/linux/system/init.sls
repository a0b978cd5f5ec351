include:
  - linux.system.package
  - linux.system.hostname
  - linux.system.timezone
  - linux.system.sysctl
  - linux.system.user
