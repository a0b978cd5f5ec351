# pillar/ holds what does not belong in the reclass model: the deployments' secrets,
# gpg-encrypted (#!yaml|gpg) to the salt master's key. Everything else is in reclass/.
base:
  '*.lab.local':
    - match: glob
    - secrets.lab
    - ignore_missing: true
  '*.prod.local':
    - match: glob
    - secrets.production
    - ignore_missing: true
