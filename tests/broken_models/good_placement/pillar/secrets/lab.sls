#!yaml|gpg
# Only the names matter to the model check (the values are never decrypted).
secrets:
  keystone_database_password: |
    -----BEGIN PGP MESSAGE-----
    not a real message
    -----END PGP MESSAGE-----
