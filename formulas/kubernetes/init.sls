{%- from "kubernetes/map.jinja" import common, master, pool with context %}
{%- from "kubernetes/control/map.jinja" import control with context %}
{%- set roles = [] %}
{%- if common.enabled %}{% do roles.append('kubernetes.common') %}{% endif %}
{%- if master.enabled %}{% do roles.append('kubernetes.master') %}{% endif %}
{%- if pool.enabled %}{% do roles.append('kubernetes.pool') %}{% endif %}
{%- if control.enabled %}{% do roles.append('kubernetes.control') %}{% endif %}
include: {{ roles | json }}
