# placement:api is image-only: the configuration is all there is to apply (the image's venv
# is the package, the shared entrypoint the service).
include:
  - placement.api.config
