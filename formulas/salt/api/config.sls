{#- The master.d file salt-api and the master read: rest_cherrypy over TLS only (the
    certificate from salt.api.certificates), the netapi clients the model allows, and
    external_auth (pam) with each user's ACL exactly as the model writes it. The master
    reads external_auth at start, so a change restarts it after the run (salt.master.service's
    deferred restart); salt-api restarts at once (salt.api.service). #}
{%- from "salt/map.jinja" import master, api with context %}
{%- if not master.enabled %}
{{ raise("salt:api is enabled on a node without salt:master: salt-api runs beside the master "
    ~ "(reclass/classes/system/salt/api/single.yml goes with system.salt.master.single)") }}
{%- endif %}
{%- set config = {
    'rest_cherrypy': {
        'host': api.bind.address,
        'port': api.bind.port,
        'ssl_crt': api.ssl.pki_dir ~ '/api.crt',
        'ssl_key': api.ssl.pki_dir ~ '/api.key',
    },
    'netapi_enable_clients': api.clients,
    'external_auth': {'pam': {}},
    'auth.pam.service': api.pam.service,
} %}
{%- if api.pam.python %}
{%- do config.update({'auth.pam.python': api.pam.wrapper}) %}
{%- endif %}
{%- for name, user in api.users | dictsort %}
{%- do config.external_auth.pam.update({name: user.acl}) %}
{%- endfor %}
include:
  - salt.master.service

{%- if api.pam.python %}
salt-api-pam-python-wrapper-managed:
  file.managed:
    - name: {{ api.pam.wrapper }}
    - makedirs: true
    - mode: '0755'
    - contents: |
        #!/bin/sh
        # Salt's PAM helper, run with the venv's python by its venv path (salt/auth/pam.py
        # resolves the symlinks of auth.pam.python, which would leave the venv)
        exec {{ api.pam.python }} "$@"
    - require_in:
      - file: salt-api-config-file-managed
{%- endif %}

salt-api-config-file-managed:
  file.serialize:
    - name: {{ api.config_file }}
    - serializer: yaml
    - dataset: {{ config | json }}
    - makedirs: true
    {#- the file names the eauth users and what they may run: root only #}
    - user: root
    - group: root
    - mode: '0600'
    - onchanges_in:
      - cmd: salt-master-service-restart-scheduled
