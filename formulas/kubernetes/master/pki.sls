{#- The control plane's PKI, the kubeadm file set under pki_dir: the cluster, front-proxy
    and etcd CA certificates, the apiserver's serving certificate, its clients of the
    kubelets, of etcd and of the aggregated APIs (front proxy), and the service-account
    key pair (a secret: the same key on every master). Keys are made on the master and
    never leave it; certificates are signed by the CA minion under the model's policies. #}
{%- from "kubernetes/map.jinja" import common, master, k8s with context %}
{%- from "pki/macros.jinja" import key_and_certificate, ca_certificate with context %}
{%- set pki = common.pki_dir %}
{%- set ssl = common.ssl %}
{%- set mssl = master.ssl %}
{%- set secrets = salt['pillar.get']('secrets', {}) %}
{%- set sa_secret = master.service_account.key_secret %}
{%- if not sa_secret or sa_secret not in secrets %}
{{ raise("kubernetes:master:service_account:key_secret names secret '" ~ sa_secret
    ~ "', which is not in the secrets pillar of this minion (pillar/secrets/); add it (an RSA"
    ~ " private key PEM), or run `stacksalt secrets generate` for a test deployment") }}
{%- endif %}
{%- set apiserver_san = [
    'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.' ~ common.cluster.domain,
    'DNS:' ~ common.hostname, 'DNS:' ~ k8s.fqdn,
    'IP:' ~ k8s.service_ip, 'IP:' ~ common.cluster.api.vip, 'IP:' ~ common.address,
    'IP:127.0.0.1'] %}
{%- set pki_dir = [{'file': 'kubernetes-common-pki-directory-managed'}] %}
{%- set cluster_ca = (pki ~ '/ca.crt', 'kubernetes-common-ca-certificate-managed') %}
{%- set front_proxy_ca = (pki ~ '/front-proxy-ca.crt',
                         'kubernetes-master-front-proxy-ca-certificate-managed') %}
{%- set etcd_ca = (pki ~ '/etcd/ca.crt', 'kubernetes-master-etcd-ca-certificate-managed') %}
include:
  - pki.check
  - kubernetes.common.pki

kubernetes-master-etcd-pki-directory-managed:
  file.directory:
    - name: {{ pki }}/etcd
    - mode: '0755'
    - require:
      - file: kubernetes-common-pki-directory-managed
{{ ca_certificate('kubernetes-master-front-proxy', pki ~ '/front-proxy-ca.crt', ssl,
    mssl.front_proxy_authority, require=pki_dir) }}
{{ ca_certificate('kubernetes-master-etcd', pki ~ '/etcd/ca.crt', ssl, mssl.etcd_authority,
    require=[{'file': 'kubernetes-master-etcd-pki-directory-managed'}]) }}
{{ key_and_certificate('kubernetes-master-apiserver', pki ~ '/apiserver', ssl,
    mssl.apiserver_policy, 'kube-apiserver', cluster_ca, san=apiserver_san, require=pki_dir) }}
{{ key_and_certificate('kubernetes-master-apiserver-kubelet-client',
    pki ~ '/apiserver-kubelet-client', ssl, mssl.master_client_policy,
    'kube-apiserver-kubelet-client', cluster_ca, O='system:masters', require=pki_dir) }}
{{ key_and_certificate('kubernetes-master-apiserver-etcd-client', pki ~ '/apiserver-etcd-client',
    ssl, mssl.etcd_client_policy, 'kube-apiserver-etcd-client', etcd_ca, require=pki_dir) }}
{{ key_and_certificate('kubernetes-master-front-proxy-client', pki ~ '/front-proxy-client', ssl,
    mssl.front_proxy_client_policy, 'front-proxy-client', front_proxy_ca, require=pki_dir) }}

kubernetes-master-service-account-private-key-managed:
  file.managed:
    - name: {{ pki }}/sa.key
    - contents: {{ secrets[sa_secret] | trim | json }}
    - mode: '0600'
    - show_changes: false
    - require:
      - file: kubernetes-common-pki-directory-managed

kubernetes-master-service-account-public-key-managed:
  file.managed:
    - name: {{ pki }}/sa.pub
    - contents: {{ salt['x509.get_public_key'](secrets[sa_secret]) | trim | json }}
    - mode: '0644'
    - require:
      - file: kubernetes-common-pki-directory-managed
