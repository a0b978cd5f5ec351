{%- from "keystone/map.jinja" import server with context %}
{%- set roles = [] %}
{%- if server.enabled %}{% do roles.append('keystone.server') %}{% endif %}
include: {{ roles | json }}
