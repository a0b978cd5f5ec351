{#- etcd client TLS for Calico on this node (calico-node, the CNI plugin, calicoctl,
    calico-kube-controllers all read these files from the host; none of them is ever put
    into a Kubernetes Secret or manifest). The key is made here and never leaves the node;
    the certificate is signed by the CA minion under the etcd_calico_client policy, its
    CN pinned to etcd's Calico user (etcd.server.auth gives it /calico/ only; the shared
    pattern: pki/macros.jinja). #}
{%- from "calico/map.jinja" import node, pki with context %}
{%- from "pki/macros.jinja" import key_and_certificate, ca_certificate with context %}
{%- set ssl = node.etcd.ssl %}
{%- set pki_dir = [{'file': 'calico-node-pki-directory-managed'}] %}
{#- pki.cert and pki.key (calico/map.jinja) are <path>.crt and <path>.key #}
{%- set path = pki.cert.rsplit('.', 1)[0] %}
include:
  - pki.check

calico-node-pki-directory-managed:
  file.directory:
    - name: {{ node.pki_dir }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: true
{{ ca_certificate('calico-node-etcd', pki.ca, ssl, require=pki_dir) }}
{{ key_and_certificate('calico-node-etcd-client', path, ssl,
    ssl.client_policy, node.etcd.user, (pki.ca, 'calico-node-etcd-ca-certificate-managed'),
    require=pki_dir) }}
