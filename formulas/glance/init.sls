{%- from "glance/map.jinja" import api with context %}
{%- set roles = [] %}
{%- if api.enabled %}{% do roles.append('glance.api') %}{% endif %}
include: {{ roles | json }}
