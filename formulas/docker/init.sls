{%- from "docker/map.jinja" import registry with context %}
{%- set roles = [] %}
{%- if registry.enabled %}{% do roles.append('docker.registry') %}{% endif %}
include: {{ roles | json }}
