{#- Renders memcached's command line from the pillar. Run by the image's render stage;
    the final stage copies it into /etc/stacksalt/templates. #}
{%- from "memcached/map.jinja" import server with context %}
{%- if server.enabled %}

memcached-server-args-file-managed:
  file.managed:
    - name: {{ server.args_file }}
    - source: salt://memcached/files/args.jinja
    - template: jinja
    - makedirs: true
    - mode: '0644'
    - context:
        server: {{ server | json }}
{%- endif %}
