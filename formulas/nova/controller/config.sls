{#- Renders every file the nova-controller image needs (nova-api, -conductor, -scheduler,
    -novncproxy and the nova-manage jobs), with ${NAME} placeholders for the dynamic
    values and secrets that the image's entrypoint fills at start (images/README.md).
    Run by the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. #}
{%- from "nova/map.jinja" import controller with context %}
{%- if controller.enabled %}
{%- set files = {
    'nova.conf': 'nova-controller.conf.jinja',
    'api-paste.ini': 'api-paste.ini.jinja',
    'logging.conf': 'logging.conf.jinja',
    'gunicorn.conf.py': 'gunicorn.conf.py.jinja',
    'ks-register.ini': 'ks-register.ini.jinja',
    'nova-manage.env': 'nova-manage.env.jinja',
} %}
{%- for name, source in files | dictsort %}

nova-controller-{{ name | replace('.', '-') }}-managed:
  file.managed:
    - name: {{ controller.config_dir }}/{{ name }}
    - source: salt://nova/files/{{ source }}
    - template: jinja
    - makedirs: true
    - mode: '0640'
    - context:
        server: {{ controller | json }}
{%- endfor %}
{%- endif %}
