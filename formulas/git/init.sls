{%- from "git/map.jinja" import server with context %}
{%- set roles = [] %}
{%- if server.enabled %}{% do roles.append('git.server') %}{% endif %}
include: {{ roles | json }}
