{#- Renders every file glance-api needs, with ${NAME} placeholders for the dynamic values
    and secrets that the image's entrypoint fills at start (images/README.md). Run by
    the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. #}
{%- from "glance/map.jinja" import api with context %}
{%- if api.enabled %}
{%- set files = {
    'glance-api.conf': 'glance-api.conf.jinja',
    'glance-api-paste.ini': 'glance-api-paste.ini.jinja',
    'logging.conf': 'logging.conf.jinja',
    'gunicorn.conf.py': 'gunicorn.conf.py.jinja',
    'ks-register.ini': 'ks-register.ini.jinja',
} %}
{%- for name, source in files | dictsort %}

glance-api-{{ name | replace('.', '-') }}-managed:
  file.managed:
    - name: {{ api.config_dir }}/{{ name }}
    - source: salt://glance/files/{{ source }}
    - template: jinja
    - makedirs: true
    - mode: '0640'
    - context:
        server: {{ api | json }}
{%- endfor %}
{%- endif %}
