include:
  - salt.master.config
  - salt.master.service
