{%- from "nova/map.jinja" import controller, compute with context %}
{%- set roles = [] %}
{%- if controller.enabled %}{% do roles.append('nova.controller') %}{% endif %}
{%- if compute.enabled %}{% do roles.append('nova.compute') %}{% endif %}
include: {{ roles | json }}
