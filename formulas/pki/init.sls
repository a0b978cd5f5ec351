{#- The node PKI has no role of its own in the model: the formulas that need TLS include
    pki.check and call pki/macros.jinja. #}
include:
  - pki.check
