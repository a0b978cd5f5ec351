include:
  - salt.api.package
  - salt.api.user
  - salt.api.certificates
  - salt.api.config
  - salt.api.service
