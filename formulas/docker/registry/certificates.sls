{#- The registry's TLS key and certificate. The key is made here and never leaves the node;
    the certificate is signed by the CA minion through the master from the cluster's
    Kubernetes CA (which the Kubernetes nodes' containerd already trusts for this registry),
    under the `docker_registry` signing policy, and reissued when fewer than days_remaining
    days are left. When the certificate is current (expiry, key, chain, CN, SANs), the
    state skips its round trip to the CA minion. #}
{%- from "docker/map.jinja" import registry with context %}
{%- set ssl = registry.ssl %}
{%- set pki = ssl.pki_dir %}
{%- if not registry.hostname or not registry.address or not ssl.ca_server %}
{{ raise("docker:registry: hostname, address and ssl:ca_server must be set in the model (they are "
    ~ "hostname=" ~ registry.hostname ~ ", address=" ~ registry.address ~ ", ssl:ca_server="
    ~ ssl.ca_server ~ "); see reclass/classes/service/docker/registry.yml") }}
{%- endif %}
{%- set short = registry.hostname.split('.')[0] %}
{%- set san = ['DNS:' ~ registry.hostname, 'DNS:' ~ short, 'IP:' ~ registry.address] %}
{%- set path = pki ~ '/registry' %}
{%- set ca_file = pki ~ '/ca.crt' %}
{%- set check = [ssl.check_script, path ~ '.crt', path ~ '.key', ca_file, ssl.days_remaining,
                 registry.hostname, '', san | join(', ')] %}
docker-registry-pki-directory-managed:
  file.directory:
    - name: {{ pki }}
    - user: root
    - group: {{ registry.system_group }}
    - mode: '0750'
    - makedirs: true
    - require:
      - pkg: docker-registry-packages-installed

docker-registry-certificate-check-script-managed:
  file.managed:
    - name: {{ ssl.check_script }}
    - source: {{ ssl.check_script_source }}
    - mode: '0755'

{#- the issuing CA's certificate, from the salt mine when the state runs (a renewed CA
    arrives with the next state.apply) #}
docker-registry-ca-certificate-managed:
  file.managed:
    - name: {{ ca_file }}
    - source: salt://kubernetes/files/ca.crt.jinja
    - template: jinja
    - mode: '0644'
    - context:
        ca_server: {{ ssl.ca_server }}
        mine_function: {{ ssl.mine_function }}
        ca_path: {{ ssl.ca_base_dir }}/{{ ssl.authority }}/ca.crt
    - require:
      - file: docker-registry-pki-directory-managed

docker-registry-private-key-managed:
  x509.private_key_managed:
    - name: {{ path }}.key
    - algo: rsa
    - keysize: {{ ssl.key_size }}
    - user: {{ registry.system_user }}
    - group: {{ registry.system_group }}
    - mode: '0600'
    {#- the state compiles the whole pillar again for its file check: skip it when the key
        is there as wanted (the service's user, 0600, RSA of key_size bits) #}
    - unless: >-
        test "$(stat -c '%a %U %G' {{ path }}.key)" =
        "600 {{ registry.system_user }} {{ registry.system_group }}" &&
        openssl pkey -in {{ path }}.key -noout -text | head -n 1 |
        grep -qF "({{ ssl.key_size }} bit"
    - require:
      - file: docker-registry-pki-directory-managed

docker-registry-certificate-managed:
  x509.certificate_managed:
    - name: {{ path }}.crt
    - ca_server: {{ ssl.ca_server }}
    - signing_policy: {{ ssl.policy }}
    - private_key: {{ path }}.key
    - CN: {{ registry.hostname | json }}
    - subjectAltName: {{ san | join(', ') | json }}
    - days_remaining: {{ ssl.days_remaining }}
    - mode: '0644'
    - unless: {{ check | map('string') | map('quote') | join(' ') | json }}
    - require:
      - x509: docker-registry-private-key-managed
      - file: docker-registry-ca-certificate-managed
      - file: docker-registry-certificate-check-script-managed
