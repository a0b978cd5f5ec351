{#- Renders every file the nova-controller image needs (nova-api, -conductor, -scheduler,
    -novncproxy and the nova-manage jobs), with ${NAME} placeholders for the dynamic
    values and secrets that the image's entrypoint fills at start (images/README.md).
    Run by the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. `own`: file -> this formula's template; `shared`: the
    files rendered from the openstack formula's templates (openstack/macros.jinja). #}
{%- from "nova/map.jinja" import controller with context %}
{%- from "openstack/macros.jinja" import config_files %}
{%- if controller.enabled %}
{%- set own = {
    'nova.conf': 'nova-controller.conf.jinja',
    'api-paste.ini': 'api-paste.ini.jinja',
    'nova-manage.env': 'nova-manage.env.jinja',
} %}
{%- set shared = ['logging.conf', 'gunicorn.conf.py', 'ks-register.ini'] %}
{{ config_files('nova', 'controller', controller, own, shared) }}
{%- endif %}
