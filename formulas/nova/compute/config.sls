{#- Renders every file nova-compute needs, with ${NAME} placeholders for the dynamic
    values and secrets that the image's entrypoint fills at start (images/README.md).
    Run by the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. #}
{%- from "nova/map.jinja" import compute with context %}
{%- if compute.enabled %}
{%- set files = {
    'nova.conf': 'nova-compute.conf.jinja',
    'logging.conf': 'logging.conf.jinja',
} %}
{%- for name, source in files | dictsort %}

nova-compute-{{ name | replace('.', '-') }}-managed:
  file.managed:
    - name: {{ compute.config_dir }}/{{ name }}
    - source: salt://nova/files/{{ source }}
    - template: jinja
    - makedirs: true
    - mode: '0640'
    - context:
        server: {{ compute | json }}
{%- endfor %}
{%- endif %}
