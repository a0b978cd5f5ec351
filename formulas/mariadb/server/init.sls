# mariadb:server is image-only: the configuration is all there is to apply (the image
# installs Debian's mariadb-server, the shared entrypoint starts it).
include:
  - mariadb.server.config
