{#- The registry's TLS key and certificate. The key is made here (owned by the service's
    user) and never leaves the node; the certificate is signed by the CA minion through the
    master from the cluster's Kubernetes CA (which the Kubernetes nodes' containerd already
    trusts for this registry), under the `docker_registry` signing policy, and reissued
    when fewer than days_remaining days are left (the shared pattern: pki/macros.jinja). #}
{%- from "docker/map.jinja" import registry with context %}
{%- from "pki/macros.jinja" import key_and_certificate, ca_certificate with context %}
{%- set ssl = registry.ssl %}
{%- set pki = ssl.pki_dir %}
{%- if not registry.hostname or not registry.address or not ssl.ca_server %}
{{ raise("docker:registry: hostname, address and ssl:ca_server must be set in the model (they are "
    ~ "hostname=" ~ registry.hostname ~ ", address=" ~ registry.address ~ ", ssl:ca_server="
    ~ ssl.ca_server ~ "); see reclass/classes/service/docker/registry.yml") }}
{%- endif %}
{%- set short = registry.hostname.split('.')[0] %}
{%- set san = ['DNS:' ~ registry.hostname, 'DNS:' ~ short, 'IP:' ~ registry.address] %}
{%- set pki_dir = [{'file': 'docker-registry-pki-directory-managed'}] %}
include:
  - pki.check

docker-registry-pki-directory-managed:
  file.directory:
    - name: {{ pki }}
    - user: root
    - group: {{ registry.system_group }}
    - mode: '0750'
    - makedirs: true
    - require:
      - pkg: docker-registry-packages-installed
{{ ca_certificate('docker-registry', pki ~ '/ca.crt', ssl, require=pki_dir) }}
{{ key_and_certificate('docker-registry', pki ~ '/registry', ssl, ssl.policy, registry.hostname,
    (pki ~ '/ca.crt', 'docker-registry-ca-certificate-managed'), san=san,
    key_user=registry.system_user, key_group=registry.system_group, require=pki_dir) }}
