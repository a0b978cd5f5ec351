{%- from "neutron/map.jinja" import server with context %}
{%- set roles = [] %}
{%- if server.enabled %}{% do roles.append('neutron.server') %}{% endif %}
include: {{ roles | json }}
