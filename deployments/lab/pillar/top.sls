# pillar/ holds what does not belong in the reclass model: the deployments' secrets,
# gpg-encrypted to the salt master's key (pillar/secrets/<deployment>.sls). They reach the
# minions through the stacksalt_secrets ext_pillar (formulas/_pillar/), not through this top
# file: each minion receives only the secrets its own model references, decrypted once per
# pillar compile. Nothing is assigned here.
base: {}
