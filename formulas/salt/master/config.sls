{#- The master's configuration: formulas, pillar, the reclass ext_pillar and master_tops
    (same engine options as stacksalt.engine.ENGINE_OPTIONS), peer signing, gpg keys. #}
{%- from "salt/map.jinja" import master with context %}
{%- set config = {
    'interface': master.interface,
    'file_roots': {'base': master.file_roots},
    'pillar_roots': {'base': master.pillar_roots},
    'ext_pillar': [{'reclass': master.reclass}],
    'master_tops': {'reclass': master.reclass},
    'peer': master.peer,
    'auto_accept': master.auto_accept,
    'gpg_keydir': master.gpg_keydir,
} %}
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
