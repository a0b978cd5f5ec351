{#- The kubernetes formula's roles, as the pillar enables them. #}
{%- set roles = [] %}
{%- for role in ('common', 'master', 'pool', 'control') %}
{%- if salt['pillar.get']('kubernetes:' ~ role ~ ':enabled', False) %}
{%- do roles.append('kubernetes.' ~ role) %}
{%- endif %}
{%- endfor %}
include: {{ roles | json }}
