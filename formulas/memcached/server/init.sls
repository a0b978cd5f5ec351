# memcached:server is image-only: the command line is all there is to render (the image
# installs Debian's memcached, the shared entrypoint starts it).
include:
  - memcached.server.config
