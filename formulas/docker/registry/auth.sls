{#- htpasswd authentication: the model's one account, its password from the secrets pillar,
    hashed with bcrypt (the only hash the registry accepts). The password travels in the
    environment of the command (never on a command line, never in the state's output),
    and the file is rewritten only when the password no longer verifies. #}
{%- from "docker/map.jinja" import registry with context %}
{%- set secrets = salt['pillar.get']('secrets', {}) %}
{%- set auth = registry.auth %}
{%- if not registry.user %}
{{ raise("docker:registry:user is not set in the model (the registry's account, e.g. "
    ~ "${_param:docker_registry_user} in reclass/classes/service/docker/registry.yml)") }}
{%- endif %}
{%- if not registry.password_secret or registry.password_secret not in secrets %}
{{ raise("docker:registry:password_secret names secret '" ~ registry.password_secret
    ~ "', which is not in the secrets pillar of this minion (pillar/secrets/); add it, or run "
    ~ "`stacksalt secrets generate` for a test deployment") }}
{%- endif %}
{%- set pipe = 'printf "%s\\n" "$REGISTRY_PASSWORD" | htpasswd -i' %}
docker-registry-htpasswd-user-managed:
  cmd.run:
    {#- -c: the file holds exactly this one account #}
    - name: >-
        {{ pipe }} -c -B -C {{ auth.bcrypt_cost }} {{ auth.htpasswd_file }} {{ registry.user }}
    - unless: >-
        test -s {{ auth.htpasswd_file }} &&
        {{ pipe }} -v {{ auth.htpasswd_file }} {{ registry.user }}
    - env:
        REGISTRY_PASSWORD: {{ secrets[registry.password_secret] | string | trim | json }}
    - umask: '027'
    - hide_output: true
    - require:
      - pkg: docker-registry-packages-installed

docker-registry-htpasswd-file-permissions-managed:
  file.managed:
    - name: {{ auth.htpasswd_file }}
    - replace: false
    - user: root
    - group: {{ registry.system_group }}
    - mode: '0640'
    - require:
      - cmd: docker-registry-htpasswd-user-managed
