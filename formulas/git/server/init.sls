include:
  - git.server.package
  - git.server.user
  - git.server.repositories
  - git.server.sshd
