{#- The control plane's kubeconfigs, each with its own client certificate embedded, all
    pointing at the API's virtual IP: controller-manager and scheduler; admin.conf
    (kubernetes-admin, group kubeadm:cluster-admins: cluster-admin through the
    ClusterRoleBinding the apply plan creates first, revocable) and super-admin.conf
    (kubernetes-super-admin, system:masters: no RBAC can revoke it; break-glass, and the
    creator of that binding), as kubeadm >= 1.29 makes them. Every file 0600 root. Each
    person's certificate is signed under a policy that pins its subject. #}
{%- from "kubernetes/map.jinja" import common, master, k8s with context %}
{%- from "pki/macros.jinja" import key_and_certificate with context %}
{%- from "kubernetes/macros.jinja" import kubeconfig with context %}
{%- set ssl = common.ssl %}
{%- set mssl = master.ssl %}
{%- set ca = (common.pki_dir ~ '/ca.crt', 'kubernetes-common-ca-certificate-managed') %}
{%- set clients = {
    'admin': {'CN': master.admin.CN, 'O': master.admin.O, 'policy': mssl.admin_client_policy},
    'super-admin': {'CN': master.super_admin.CN, 'O': master.super_admin.O,
                    'policy': mssl.super_admin_client_policy},
    'controller-manager': {'CN': 'system:kube-controller-manager', 'O': None,
                           'policy': mssl.master_client_policy},
    'scheduler': {'CN': 'system:kube-scheduler', 'O': None, 'policy': mssl.master_client_policy},
} %}
include:
  - pki.check
  - kubernetes.common.pki
{%- for name, client in clients | dictsort %}
{%- set cert = common.pki_dir ~ '/kubeconfig/' ~ name %}
{{ key_and_certificate('kubernetes-master-' ~ name ~ '-client', cert, ssl,
    client.policy, client.CN, ca=ca, O=client.O,
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

{#- root's kubectl: admin.conf, never super-admin.conf (use that one by name, on purpose) #}
kubernetes-master-root-kubeconfig-symlinked:
  file.symlink:
    - name: /root/.kube/config
    - target: {{ common.config_dir }}/admin.conf
    - require:
      - file: kubernetes-master-root-kube-directory-managed
      - file: kubernetes-master-admin-kubeconfig-managed
