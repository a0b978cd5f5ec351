include:
  - etcd.server.package
  - etcd.server.certificates
  - etcd.server.config
  - etcd.server.service
  - etcd.server.auth
