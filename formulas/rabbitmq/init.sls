{%- from "rabbitmq/map.jinja" import server with context %}
{%- set roles = [] %}
{%- if server.enabled %}{% do roles.append('rabbitmq.server') %}{% endif %}
include: {{ roles | json }}
