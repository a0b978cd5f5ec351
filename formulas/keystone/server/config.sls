{#- Renders every file keystone needs, with ${NAME} placeholders for the dynamic values
    and secrets that the image's entrypoint fills at start (images/README.md). Run by
    the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. `own`: file -> this formula's template; `shared`: the
    files rendered from the openstack formula's templates (openstack/macros.jinja). #}
{%- from "keystone/map.jinja" import server with context %}
{%- from "openstack/macros.jinja" import config_files %}
{%- if server.enabled %}
{%- set own = {
    'keystone.conf': 'keystone.conf.jinja',
    'bootstrap.env': 'bootstrap.env.jinja',
} %}
{%- set shared = ['logging.conf', 'gunicorn.conf.py'] %}
{{ config_files('keystone', 'server', server, own, shared) }}
{%- endif %}
