{#- The control plane's kubeconfigs: admin, controller-manager and scheduler, each with its
    own client certificate embedded, all pointing at the API's virtual IP. #}
{%- from "kubernetes/map.jinja" import common, master, k8s with context %}
{%- from "pki/macros.jinja" import key_and_certificate with context %}
{%- from "kubernetes/macros.jinja" import kubeconfig with context %}
{%- set ssl = common.ssl %}
{%- set ca = (common.pki_dir ~ '/ca.crt', 'kubernetes-common-ca-certificate-managed') %}
{%- set clients = {
    'admin': {'CN': master.admin.CN, 'O': master.admin.O},
    'controller-manager': {'CN': 'system:kube-controller-manager', 'O': None},
    'scheduler': {'CN': 'system:kube-scheduler', 'O': None},
} %}
include:
  - pki.check
  - kubernetes.common.pki
{%- for name, client in clients | dictsort %}
{%- set cert = common.pki_dir ~ '/kubeconfig/' ~ name %}
{{ key_and_certificate('kubernetes-master-' ~ name ~ '-client', cert, ssl,
    master.ssl.master_client_policy, client.CN, ca=ca, O=client.O,
    require=[{'file': 'kubernetes-common-kubeconfig-pki-directory-managed'}]) }}
{{ kubeconfig('kubernetes-master-' ~ name ~ '-kubeconfig-managed',
    common.config_dir ~ '/' ~ name ~ '.conf', common.cluster.name, k8s.server,
    common.pki_dir ~ '/ca.crt', client.CN, cert,
    [{'file': 'kubernetes-common-ca-certificate-managed'},
     {'x509': 'kubernetes-master-' ~ name ~ '-client-certificate-managed'}]) }}
{%- endfor %}

kubernetes-master-root-kube-directory-managed:
  file.directory:
    - name: /root/.kube
    - mode: '0700'

kubernetes-master-root-kubeconfig-symlinked:
  file.symlink:
    - name: /root/.kube/config
    - target: {{ common.config_dir }}/admin.conf
    - require:
      - file: kubernetes-master-root-kube-directory-managed
      - file: kubernetes-master-admin-kubeconfig-managed
