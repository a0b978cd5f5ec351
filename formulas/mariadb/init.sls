{%- from "mariadb/map.jinja" import server with context %}
{%- set roles = [] %}
{%- if server.enabled %}{% do roles.append('mariadb.server') %}{% endif %}
include: {{ roles | json }}
