{%- from "linux/map.jinja" import system with context %}
{%- if system.package %}
linux-system-packages-installed:
  pkg.installed:
    - pkgs:
{%- for name, pkg in system.package | dictsort %}
{%- if pkg.get('version') and pkg.version not in ('latest', 'any') %}
      - {{ name }}: {{ pkg.version }}
{%- else %}
      - {{ name }}
{%- endif %}
{%- endfor %}
{%- endif %}
