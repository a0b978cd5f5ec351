{#- Renders every file neutron-server needs, with ${NAME} placeholders for the dynamic
    values and secrets that the image's entrypoint fills at start (images/README.md). Run
    by the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. #}
{%- from "neutron/map.jinja" import server with context %}
{%- if server.enabled %}
{%- set files = {
    'neutron.conf': 'neutron.conf.jinja',
    'plugins/ml2/ml2_conf.ini': 'ml2_conf.ini.jinja',
    'api-paste.ini': 'api-paste.ini.jinja',
    'logging.conf': 'logging.conf.jinja',
    'gunicorn.conf.py': 'gunicorn.conf.py.jinja',
    'ks-register.ini': 'ks-register.ini.jinja',
} %}
{%- for name, source in files | dictsort %}

neutron-server-{{ name | replace('.', '-') | replace('/', '-') }}-managed:
  file.managed:
    - name: {{ server.config_dir }}/{{ name }}
    - source: salt://neutron/files/{{ source }}
    - template: jinja
    - makedirs: true
    - mode: '0640'
    - context:
        server: {{ server | json }}
{%- endfor %}
{%- endif %}
