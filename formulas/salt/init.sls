{%- from "salt/map.jinja" import master, minion with context %}
{%- set roles = [] %}
{%- if master.enabled %}{% do roles.append('salt.master') %}{% endif %}
{%- if minion.enabled %}{% do roles.append('salt.minion') %}{% endif %}
include: {{ roles | json }}
