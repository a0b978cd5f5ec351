{%- from "salt/map.jinja" import master, minion, api with context %}
{%- set roles = [] %}
{%- if master.enabled %}{% do roles.append('salt.master') %}{% endif %}
{%- if minion.enabled %}{% do roles.append('salt.minion') %}{% endif %}
{%- if api.enabled %}{% do roles.append('salt.api') %}{% endif %}
include: {{ roles | json }}
