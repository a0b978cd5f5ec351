{%- from "salt/map.jinja" import minion with context %}
include:
  - salt.minion.config
  - salt.minion.service
{%- if minion.ca.enabled %}
  - salt.minion.ca
{%- endif %}
