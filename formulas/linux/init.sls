{%- from "linux/map.jinja" import system, network with context %}
{%- set roles = [] %}
{%- if system.enabled %}{% do roles.append('linux.system') %}{% endif %}
{%- if network.enabled %}{% do roles.append('linux.network') %}{% endif %}
include: {{ roles | json }}
