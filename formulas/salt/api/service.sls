{#- salt-api's systemd unit (the distribution's, or the one the lab's image ships), started
    once CherryPy, the certificate and the users are there, and restarted when its
    configuration or its certificate changes (rest_cherrypy reads them at start). #}
{%- from "salt/map.jinja" import api with context %}
salt-api-service-running:
  service.running:
    - name: {{ api.service }}
    - enable: true
    - require:
      - test: salt-api-cherrypy-installed-checked
      - x509: salt-api-private-key-managed
{%- for name in api.users | sort %}
      - user: salt-api-user-{{ name }}-present
{%- endfor %}
    - watch:
      - file: salt-api-config-file-managed
      - x509: salt-api-certificate-managed
