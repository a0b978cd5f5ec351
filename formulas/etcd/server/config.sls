{%- from "etcd/map.jinja" import server with context %}
etcd-server-config-file-managed:
  file.managed:
    - name: {{ server.config_file }}
    - source: salt://etcd/files/etcd.default.jinja
    - template: jinja
    - mode: '0644'
    - context:
        server: {{ server | json }}
    - require:
      - sls: etcd.server.package
