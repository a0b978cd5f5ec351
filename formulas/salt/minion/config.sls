{%- from "salt/map.jinja" import minion with context %}
salt-minion-config-file-managed:
  file.serialize:
    - name: {{ minion.config_file }}
    - serializer: yaml
    - dataset:
        master: {{ minion.master.host }}
        mine_interval: {{ minion.mine_interval }}
    - makedirs: true
    - mode: '0644'
