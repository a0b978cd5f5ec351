{#- The control plane as static pods the kubelet runs: kube-apiserver (all etcd members
    over TLS with its own client certificate), kube-controller-manager, kube-scheduler. #}
{%- from "kubernetes/map.jinja" import common, master, k8s with context %}
{%- set pki = common.pki_dir %}
{%- set etcd_servers = [] %}
{%- for member in master.etcd.members %}
{%- do etcd_servers.append('https://' ~ member.host ~ ':' ~ master.etcd.port) %}
{%- endfor %}
{#- an etcd member waits for etcd's quorum before its apiserver can start (etcd formula) #}
{%- set etcd_member = salt['pillar.get']('etcd:server:enabled', False) %}
include:
  - kubernetes.common.pki
  - kubernetes.master.pki
  - kubernetes.master.kubeconfig
  - kubernetes.master.encryption
  - kubernetes.master.audit
{%- if etcd_member %}
  - etcd.server.service
{%- endif %}
{#- Each pod's manifest runs after every state that writes a file it reads (its
    certificates and keys, CA copies, kubeconfig, encryption config): the state
    stacksalt_static_pod.manifest fingerprints those files when it runs
    (stacksalt.io/config-hash), so a renewal restarts the pod on the same run. #}
{%- set ca = [('file', 'kubernetes-common-ca-certificate-managed')] %}
{%- set front_proxy_ca = [('file', 'kubernetes-master-front-proxy-ca-certificate-managed')] %}
{%- set sa_key = [('file', 'kubernetes-master-service-account-private-key-managed')] %}
{%- set reads = {'kube-apiserver': ca + front_proxy_ca + sa_key + [
    ('file', 'kubernetes-master-etcd-ca-certificate-managed'),
    ('file', 'kubernetes-master-service-account-public-key-managed')]} %}
{%- for cert in ('apiserver', 'apiserver-etcd-client', 'apiserver-kubelet-client',
                 'front-proxy-client') %}
{%- do reads['kube-apiserver'].extend([
    ('x509', 'kubernetes-master-' ~ cert ~ '-private-key-managed'),
    ('x509', 'kubernetes-master-' ~ cert ~ '-certificate-managed')]) %}
{%- endfor %}
{%- if master.encryption.enabled %}
{%- do reads['kube-apiserver'].append(('file', 'kubernetes-master-secrets-encryption-config-managed')) %}
{%- endif %}
{%- if k8s.audit.enabled %}
{%- do reads['kube-apiserver'].extend([('file', 'kubernetes-master-audit-policy-file-managed'),
                                       ('file', 'kubernetes-master-audit-log-directory-managed')]) %}
{%- endif %}
{%- if etcd_member %}
{%- do reads['kube-apiserver'].append(('cmd', 'etcd-server-cluster-healthy-with-quorum')) %}
{%- endif %}
{%- do reads.update({
    'kube-controller-manager': ca + front_proxy_ca + sa_key + [
        ('file', 'kubernetes-master-controller-manager-kubeconfig-managed')],
    'kube-scheduler': [('file', 'kubernetes-master-scheduler-kubeconfig-managed')],
}) %}
{%- for name in ('kube-apiserver', 'kube-controller-manager', 'kube-scheduler') %}
{%- set kubeconfig = common.config_dir ~ '/' ~ name | replace('kube-', '') ~ '.conf' %}
{%- import_yaml "kubernetes/files/objects/" ~ name ~ ".yaml" as pod with context %}

kubernetes-master-{{ name }}-manifest-managed:
  stacksalt_static_pod.manifest:
    - name: {{ common.manifests_dir }}/{{ name }}.yaml
    - dataset: {{ pod | json }}
    - mode: '0600'
    - require:
      - file: kubernetes-common-manifests-directory-managed
{%- for module, sid in reads[name] %}
      - {{ module }}: {{ sid }}
{%- endfor %}
{%- endfor %}
