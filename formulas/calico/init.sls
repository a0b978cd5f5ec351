{%- from "calico/map.jinja" import node with context %}
{%- set roles = [] %}
{%- if node.enabled %}{% do roles.append('calico.node') %}{% endif %}
include: {{ roles | json }}
