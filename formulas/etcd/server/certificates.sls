{#- TLS for etcd, the kubeadm file set: server (client-facing), peer, healthcheck-client.
    Keys are made here (owned by the etcd user) and never leave the member; certificates
    are signed by the CA minion through the master under the model's signing policies
    (the shared pattern: pki/macros.jinja). #}
{%- from "etcd/map.jinja" import server with context %}
{%- from "pki/macros.jinja" import key_and_certificate, ca_certificate with context %}
{%- set ssl = server.ssl %}
{%- set pki = server.pki_dir %}
{%- set fqdn = server.name ~ '.' ~ salt['pillar.get']('linux:system:domain', '') %}
{%- set san = ['DNS:' ~ server.name, 'DNS:' ~ fqdn, 'DNS:localhost', 'IP:' ~ server.bind.host,
               'IP:127.0.0.1'] %}
{%- set certs = {
    'server': {'policy': ssl.server_policy, 'CN': server.name, 'san': san},
    'peer': {'policy': ssl.peer_policy, 'CN': server.name, 'san': san},
    'healthcheck-client': {'policy': ssl.client_policy, 'CN': server.name ~ '-healthcheck-client', 'san': None},
} %}
{%- set pki_dir = [{'file': 'etcd-server-pki-directory-managed'}] %}
include:
  - pki.check

etcd-server-pki-directory-managed:
  file.directory:
    - name: {{ pki }}
    - user: root
    - group: {{ server.group }}
    - mode: '0750'
    - makedirs: true
    - require:
      - sls: etcd.server.package
{{ ca_certificate('etcd-server', pki ~ '/ca.crt', ssl, require=pki_dir) }}
{%- for name, cert in certs | dictsort %}
{{ key_and_certificate('etcd-server-' ~ name, pki ~ '/' ~ name, ssl, cert.policy, cert.CN,
    (pki ~ '/ca.crt', 'etcd-server-ca-certificate-managed'), san=cert.san,
    key_user=server.user, key_group=server.group, cert_group=server.group, require=pki_dir) }}
{%- endfor %}
