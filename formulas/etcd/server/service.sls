{%- from "etcd/map.jinja" import server with context %}
include:
  - etcd.server.package
  - etcd.server.certificates
  - etcd.server.config

etcd-server-service-running:
  service.running:
    - name: {{ server.service }}
    - enable: true
    - watch:
      - sls: etcd.server.package
      - file: etcd-server-config-file-managed
{%- for name in ('server', 'peer') %}
      - x509: etcd-server-{{ name }}-certificate-managed
{%- endfor %}
