"""`stacksalt images`: build the deployment's container images from the model, push them,
scan them for secrets (see images/README.md for the contract)."""
