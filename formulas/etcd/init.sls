{%- from "etcd/map.jinja" import server with context %}
{%- set roles = [] %}
{%- if server.enabled %}{% do roles.append('etcd.server') %}{% endif %}
include: {{ roles | json }}
