{#- etcd client TLS for Calico on this node (calico-node, the CNI plugin, calicoctl,
    calico-kube-controllers all read these files from the host; none of them is ever put
    into a Kubernetes Secret or manifest). The key is made here and never leaves the node;
    the certificate is signed by the CA minion under the etcd_calico_client policy. #}
{%- from "calico/map.jinja" import node, pki with context %}
{%- set ssl = node.etcd.ssl %}
{%- set ca_path = ssl.ca_base_dir ~ '/' ~ ssl.authority ~ '/ca.crt' %}
{%- set ca_pem = salt['mine.get'](ssl.ca_server, ssl.mine_function).get(ssl.ca_server, {}).get(ca_path) %}
calico-node-pki-directory-managed:
  file.directory:
    - name: {{ node.pki_dir }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: true
{%- if not ca_pem %}

calico-node-etcd-ca-certificate-available:
  test.fail_without_changes:
    - name: >-
        The CA certificate {{ ca_path }} of {{ ssl.ca_server }} is not in the salt mine
        ({{ ssl.mine_function }}): apply salt.minion.ca on {{ ssl.ca_server }} first.
{%- else %}

calico-node-etcd-ca-certificate-managed:
  file.managed:
    - name: {{ pki.ca }}
    - contents: {{ ca_pem | json }}
    - mode: '0644'
    - require:
      - file: calico-node-pki-directory-managed

calico-node-etcd-client-private-key-managed:
  x509.private_key_managed:
    - name: {{ pki.key }}
    - algo: rsa
    - keysize: {{ ssl.key_size }}
    - user: root
    - group: root
    - mode: '0600'
    {#- the state compiles the whole pillar again for its file check: skip it when the key
        is there as wanted (root, 0600, RSA of key_size bits) #}
    - unless: >-
        test "$(stat -c '%a %u %g' {{ pki.key }})" = "600 0 0" &&
        openssl pkey -in {{ pki.key }} -noout -text | head -n 1 |
        grep -qF "({{ ssl.key_size }} bit"
    - require:
      - file: calico-node-pki-directory-managed

calico-node-etcd-client-certificate-managed:
  x509.certificate_managed:
    - name: {{ pki.cert }}
    - ca_server: {{ ssl.ca_server }}
    - signing_policy: {{ ssl.client_policy }}
    - private_key: {{ pki.key }}
    - CN: calico-{{ node.name }}
    - days_remaining: {{ ssl.days_remaining }}
    - user: root
    - group: root
    - mode: '0644'
    {#- no CA round trip while the certificate is current (see ssl.check_script) #}
{%- set check = [ssl.check_script, pki.cert, pki.key, pki.ca, ssl.days_remaining, 'calico-' ~ node.name, '', ''] %}
    - unless: {{ ('test -x ' ~ (ssl.check_script | quote) ~ ' && ' ~ (check | map('string') | map('quote') | join(' '))) | json }}
    - require:
      - x509: calico-node-etcd-client-private-key-managed
{%- endif %}
