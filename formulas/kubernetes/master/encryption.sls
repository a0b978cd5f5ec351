{#- Secrets at rest: kube-apiserver's EncryptionConfiguration (aescbc by default), its keys
    from the secrets pillar (32 random bytes in base64 each; the first encrypts, all
    decrypt). Written into pki_dir (mounted read-only into the apiserver's pod), 0600 root,
    never shown in a state's output. Rotation: README, "Secrets at rest". #}
{%- from "kubernetes/map.jinja" import common, master with context %}
{%- set enc = master.encryption %}
{%- set secrets = salt['pillar.get']('secrets', {}) %}
{%- if enc.enabled %}
{%- if not enc['keys'] %}
{{ raise("kubernetes:master:encryption:keys is empty: name at least one key {name, key_secret}"
    ~ " (or set kubernetes:master:encryption:enabled: false)") }}
{%- endif %}
{%- set keys = [] %}
{%- set identity = {'identity': {} } %}
{%- for key in enc['keys'] %}
{%- if key.key_secret not in secrets %}
{{ raise("kubernetes:master:encryption:keys:" ~ loop.index0 ~ ":key_secret names secret '"
    ~ key.key_secret ~ "', which is not in the secrets pillar of this minion (pillar/secrets/);"
    ~ " add it (32 random bytes, base64), or run `stacksalt secrets generate`") }}
{%- endif %}
{%- do keys.append({'name': key.name, 'secret': secrets[key.key_secret] | trim}) %}
{%- endfor %}
{%- set encrypting = {enc.provider: {'keys': keys} } %}
{%- set config = {
    'apiVersion': 'apiserver.config.k8s.io/v1',
    'kind': 'EncryptionConfiguration',
    'resources': [{
        'resources': enc.resources,
        'providers': [encrypting, identity],
    }],
} %}
include:
  - kubernetes.common.pki

kubernetes-master-secrets-encryption-config-managed:
  file.managed:
    - name: {{ common.pki_dir }}/{{ enc.file }}
    - contents: {{ config | yaml(False) | json }}
    - mode: '0600'
    - user: root
    - show_changes: false
    - require:
      - file: kubernetes-common-pki-directory-managed
{%- endif %}
