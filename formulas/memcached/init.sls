{%- from "memcached/map.jinja" import server with context %}
{%- set roles = [] %}
{%- if server.enabled %}{% do roles.append('memcached.server') %}{% endif %}
include: {{ roles | json }}
