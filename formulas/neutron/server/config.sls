{#- Renders every file neutron-server needs, with ${NAME} placeholders for the dynamic
    values and secrets that the image's entrypoint fills at start (images/README.md). Run
    by the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. `own`: file -> this formula's template; `shared`: the
    files rendered from the openstack formula's templates (openstack/macros.jinja). #}
{%- from "neutron/map.jinja" import server with context %}
{%- from "openstack/macros.jinja" import config_files %}
{%- if server.enabled %}
{%- set own = {
    'neutron.conf': 'neutron.conf.jinja',
    'plugins/ml2/ml2_conf.ini': 'ml2_conf.ini.jinja',
    'api-paste.ini': 'api-paste.ini.jinja',
} %}
{%- set shared = ['logging.conf', 'gunicorn.conf.py', 'ks-register.ini'] %}
{{ config_files('neutron', 'server', server, own, shared) }}
{%- endif %}
