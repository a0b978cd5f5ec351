{#- Renders every file placement-api needs, with ${NAME} placeholders for the dynamic
    values and secrets that the image's entrypoint fills at start (images/README.md). Run by
    the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. `own`: file -> this formula's template; `shared`: the
    files rendered from the openstack formula's templates (openstack/macros.jinja). #}
{%- from "placement/map.jinja" import api with context %}
{%- from "openstack/macros.jinja" import config_files %}
{%- if api.enabled %}
{%- set own = {
    'placement.conf': 'placement.conf.jinja',
} %}
{%- set shared = ['logging.conf', 'gunicorn.conf.py', 'ks-register.ini'] %}
{{ config_files('placement', 'api', api, own, shared) }}
{%- endif %}
