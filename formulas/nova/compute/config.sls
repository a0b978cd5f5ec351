{#- Renders every file nova-compute needs, with ${NAME} placeholders for the dynamic
    values and secrets that the image's entrypoint fills at start (images/README.md).
    Run by the image's render stage; the final stage copies config_dir into
    /etc/stacksalt/templates. `own`: file -> this formula's template; `shared`: the
    files rendered from the openstack formula's templates (openstack/macros.jinja). #}
{%- from "nova/map.jinja" import compute with context %}
{%- from "openstack/macros.jinja" import config_files %}
{%- if compute.enabled %}
{%- set own = {
    'nova.conf': 'nova-compute.conf.jinja',
} %}
{%- set shared = ['logging.conf'] %}
{{ config_files('nova', 'compute', compute, own, shared) }}
{%- endif %}
