{%- from "placement/map.jinja" import api with context %}
{%- set roles = [] %}
{%- if api.enabled %}{% do roles.append('placement.api') %}{% endif %}
include: {{ roles | json }}
