{#- The master's configuration: formulas, pillar, the reclass ext_pillar and master_tops
    (same engine options as stacksalt.engine.ENGINE_OPTIONS), the secrets ext_pillar after
    it (each minion gets only the secrets its model references) and the per-node signing
    policies (the CA minion's templates expanded over the host table), peer signing, gpg keys. #}
{%- from "salt/map.jinja" import master with context %}
{%- set config = {
    'interface': master.interface,
    'file_roots': {'base': master.file_roots},
    'pillar_roots': {'base': master.pillar_roots},
    'pillar_dirs': master.pillar_dirs,
    'runner_dirs': master.runner_dirs,
    'ext_pillar': [{'reclass': master.reclass}, {'stacksalt_secrets': master.secrets},
                   {'stacksalt_signing_policies': {}}],
    'master_tops': {'reclass': master.reclass},
    'peer': master.peer,
    'auto_accept': master.auto_accept,
    'gpg_keydir': master.gpg_keydir,
} %}
{#- the stacksalt_ci runner's settings: the checkout it moves is the master's base_dir #}
{%- if master.ci.enabled %}
{%- set runner = {'base_dir': master.get('base_dir', '')} %}
{%- for key, value in master.ci.items() if key != 'enabled' %}
{%- do runner.update({key: value}) %}
{%- endfor %}
{%- set missing = [] %}
{%- for key, value in runner | dictsort if not value %}
{%- do missing.append(key) %}
{%- endfor %}
{%- if missing %}
{{ raise("salt:master:ci: " ~ missing | join(', ') ~ " not set in the model (the stacksalt_ci "
    ~ "runner needs them; system.salt.master.ci sets them from the git server's params)") }}
{%- endif %}
{%- do config.update({'stacksalt_ci': runner}) %}
{%- endif %}
salt-master-config-file-managed:
  file.serialize:
    - name: {{ master.config_file }}
    - serializer: yaml
    - dataset: {{ config | json }}
    - makedirs: true
    - mode: '0644'

salt-master-gpg-keydir-managed:
  file.directory:
    - name: {{ master.gpg_keydir }}
    - mode: '0700'
