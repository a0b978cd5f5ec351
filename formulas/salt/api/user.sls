{#- The system users salt-api authenticates with PAM (eauth pam). Each has no shell and no
    home; its password is never in the model: `password_secret` names an entry of the
    deployment's gpg-encrypted secrets pillar holding it in clear (the CI logs in with it),
    which user.present hashes with hash_password (re-using the salt of the hash in
    /etc/shadow, so a second run changes nothing). #}
{%- from "salt/map.jinja" import api with context %}
{%- set secrets = salt['pillar.get']('secrets', {}) %}
{%- if not api.users %}
{{ raise("salt:api:users is empty: salt-api needs at least one eauth user (see "
    ~ "reclass/classes/service/salt/api/init.yml)") }}
{%- endif %}
{%- for name, user in api.users | dictsort %}
{%- if not user.get('password_secret') or user.password_secret not in secrets %}
{{ raise("salt:api:users:" ~ name ~ ":password_secret names secret '" ~ user.get('password_secret')
    ~ "', which is not in the secrets pillar of this minion (pillar/secrets/); add it, or run "
    ~ "`stacksalt secrets generate` for a test deployment") }}
{%- endif %}
{%- if not user.get('acl') %}
{{ raise("salt:api:users:" ~ name ~ ":acl is empty: give the user exactly what it may run") }}
{%- endif %}
salt-api-user-{{ name }}-present:
  user.present:
    - name: {{ name }}
    - fullname: salt-api eauth user
    - system: true
    - home: /nonexistent
    - createhome: false
    - shell: {{ api.user_shell }}
    - password: {{ secrets[user.password_secret] | string | trim | json }}
    - hash_password: true
{%- endfor %}
