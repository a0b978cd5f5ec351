# rabbitmq:server is image-only: the configuration is all there is to apply (the image
# installs Debian's rabbitmq-server, the shared entrypoint starts it).
include:
  - rabbitmq.server.config
