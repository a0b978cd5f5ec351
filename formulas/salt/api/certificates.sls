{#- salt-api's TLS key and certificate. The key is made here (root: salt-api runs as root,
    like the master) and never leaves the node; the certificate is signed by the CA minion
    through the master from the cluster's Kubernetes CA, under this node's `salt_api`
    signing policy (its names and address pinned), and reissued when fewer than
    days_remaining days are left (the shared pattern: pki/macros.jinja). #}
{%- from "salt/map.jinja" import api with context %}
{%- from "pki/macros.jinja" import key_and_certificate, ca_certificate with context %}
{%- set ssl = api.ssl %}
{%- set pki = ssl.pki_dir %}
{%- if not api.hostname or not api.address or not ssl.ca_server %}
{{ raise("salt:api: hostname, address and ssl:ca_server must be set in the model (they are "
    ~ "hostname=" ~ api.hostname ~ ", address=" ~ api.address ~ ", ssl:ca_server="
    ~ ssl.ca_server ~ "); see reclass/classes/service/salt/api/init.yml") }}
{%- endif %}
{%- set short = api.hostname.split('.')[0] %}
{%- set san = ['DNS:' ~ api.hostname, 'DNS:' ~ short, 'IP:' ~ api.address] %}
{%- set pki_dir = [{'file': 'salt-api-pki-directory-managed'}] %}
include:
  - pki.check

salt-api-pki-directory-managed:
  file.directory:
    - name: {{ pki }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: true
{{ ca_certificate('salt-api', pki ~ '/ca.crt', ssl, require=pki_dir) }}
{{ key_and_certificate('salt-api', pki ~ '/api', ssl, ssl.policy, api.hostname,
    (pki ~ '/ca.crt', 'salt-api-ca-certificate-managed'), san=san, require=pki_dir) }}
