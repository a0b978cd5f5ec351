{#- Renders every file keystone needs, with ${NAME} placeholders for the dynamic values
    and secrets that the image's entrypoint fills at start (images/README.md). Run by
    the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. #}
{%- from "keystone/map.jinja" import server with context %}
{%- if server.enabled %}
{%- set files = {
    'keystone.conf': 'keystone.conf.jinja',
    'logging.conf': 'logging.conf.jinja',
    'gunicorn.conf.py': 'gunicorn.conf.py.jinja',
    'bootstrap.env': 'bootstrap.env.jinja',
} %}
{%- for name, source in files | dictsort %}

keystone-server-{{ name | replace('.', '-') }}-managed:
  file.managed:
    - name: {{ server.config_dir }}/{{ name }}
    - source: salt://keystone/files/{{ source }}
    - template: jinja
    - makedirs: true
    - mode: '0640'
    - context:
        server: {{ server | json }}
{%- endfor %}
{%- endif %}
