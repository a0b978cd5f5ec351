{#- TLS for etcd, the kubeadm file set: server (client-facing), peer, healthcheck-client.
    Keys are made here and never leave the member; certificates are signed by the CA
    minion through the master under the model's signing policies. #}
{%- from "etcd/map.jinja" import server with context %}
{%- set ssl = server.ssl %}
{%- set pki = server.pki_dir %}
{%- set ca_path = ssl.ca_base_dir ~ '/' ~ ssl.authority ~ '/ca.crt' %}
{%- set ca_pem = salt['mine.get'](ssl.ca_server, ssl.mine_function).get(ssl.ca_server, {}).get(ca_path) %}
{%- set fqdn = server.name ~ '.' ~ salt['pillar.get']('linux:system:domain', '') %}
{%- set san = 'DNS:' ~ server.name ~ ', DNS:' ~ fqdn ~ ', DNS:localhost, IP:' ~ server.bind.host ~ ', IP:127.0.0.1' %}
{%- set certs = {
    'server': {'policy': ssl.server_policy, 'CN': server.name, 'san': san},
    'peer': {'policy': ssl.peer_policy, 'CN': server.name, 'san': san},
    'healthcheck-client': {'policy': ssl.client_policy, 'CN': server.name ~ '-healthcheck-client', 'san': None},
} %}
{%- macro check(path, CN, san) -%}
{%- set argv = [ssl.check_script, path ~ '.crt', path ~ '.key', pki ~ '/ca.crt', ssl.days_remaining,
                CN, '', san or ''] -%}
{{ ('test -x ' ~ (ssl.check_script | quote) ~ ' && ' ~ (argv | map('string') | map('quote') | join(' '))) | json }}
{%- endmacro %}
{%- if not ca_pem %}
etcd-server-ca-certificate-available:
  test.fail_without_changes:
    - name: >-
        The CA certificate {{ ca_path }} of {{ ssl.ca_server }} is not in the salt mine
        ({{ ssl.mine_function }}): apply salt.minion.ca on {{ ssl.ca_server }} first.
{%- else %}
etcd-server-pki-directory-managed:
  file.directory:
    - name: {{ pki }}
    - user: root
    - group: {{ server.group }}
    - mode: '0750'
    - makedirs: true
    - require:
      - pkg: etcd-server-packages-installed

etcd-server-ca-certificate-managed:
  file.managed:
    - name: {{ pki }}/ca.crt
    - contents: {{ ca_pem | json }}
    - mode: '0644'
    - require:
      - file: etcd-server-pki-directory-managed
{%- for name, cert in certs | dictsort %}

etcd-server-{{ name }}-private-key-managed:
  x509.private_key_managed:
    - name: {{ pki }}/{{ name }}.key
    - algo: rsa
    - keysize: {{ ssl.key_size }}
    - user: {{ server.user }}
    - group: {{ server.group }}
    - mode: '0600'
    {#- the state compiles the whole pillar again for its file check: skip it when the key
        is there as wanted (0600, owner, RSA of key_size bits) #}
    - unless: >-
        test "$(stat -c '%a %U %G' {{ pki }}/{{ name }}.key)" = "600 {{ server.user }} {{ server.group }}" &&
        openssl pkey -in {{ pki }}/{{ name }}.key -noout -text | head -n 1 |
        grep -qF "({{ ssl.key_size }} bit"
    - require:
      - file: etcd-server-pki-directory-managed

etcd-server-{{ name }}-certificate-managed:
  x509.certificate_managed:
    - name: {{ pki }}/{{ name }}.crt
    - ca_server: {{ ssl.ca_server }}
    - signing_policy: {{ cert.policy }}
    - private_key: {{ pki }}/{{ name }}.key
    - CN: {{ cert.CN }}
{%- if cert.san %}
    - subjectAltName: {{ cert.san | json }}
{%- endif %}
    - days_remaining: {{ ssl.days_remaining }}
    - user: root
    - group: {{ server.group }}
    - mode: '0644'
    {#- no CA round trip while the certificate is current (see ssl.check_script) #}
    - unless: {{ check(pki ~ '/' ~ name, cert.CN, cert.san) }}
    - require:
      - x509: etcd-server-{{ name }}-private-key-managed
{%- endfor %}
{%- endif %}
