{#- Renders rabbitmq.conf, rabbitmq-env.conf and the Erlang cookie. Run by the image's
    render stage; the final stage copies them into /etc/stacksalt/templates. #}
{%- from "rabbitmq/map.jinja" import server with context %}
{%- if server.enabled %}
{%- set files = {
    'rabbitmq.conf': 'rabbitmq.conf.jinja',
    'rabbitmq-env.conf': 'rabbitmq-env.conf.jinja',
    'erlang.cookie': 'erlang.cookie.jinja',
} %}
{%- for name, source in files | dictsort %}

rabbitmq-server-{{ name | replace('.', '-') }}-managed:
  file.managed:
    - name: {{ server.config_dir }}/{{ name }}
    - source: salt://rabbitmq/files/{{ source }}
    - template: jinja
    - makedirs: true
    - mode: '0640'
    - context:
        server: {{ server | json }}
{%- endfor %}
{%- endif %}
