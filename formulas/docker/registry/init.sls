include:
  - docker.registry.package
  - docker.registry.certificates
  - docker.registry.auth
  - docker.registry.config
  - docker.registry.service
