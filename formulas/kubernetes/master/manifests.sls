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
{%- for name in ('kube-apiserver', 'kube-controller-manager', 'kube-scheduler') %}
{%- set kubeconfig = common.config_dir ~ '/' ~ name | replace('kube-', '') ~ '.conf' %}
{%- import_yaml "kubernetes/files/objects/" ~ name ~ ".yaml" as pod with context %}

kubernetes-master-{{ name }}-manifest-managed:
  file.serialize:
    - name: {{ common.manifests_dir }}/{{ name }}.yaml
    - serializer: yaml
    - dataset: {{ pod | json }}
    - mode: '0600'
    - require:
      - file: kubernetes-common-manifests-directory-managed
{%- if name == 'kube-apiserver' %}
      - x509: kubernetes-master-apiserver-certificate-managed
      - x509: kubernetes-master-apiserver-etcd-client-certificate-managed
      - x509: kubernetes-master-apiserver-kubelet-client-certificate-managed
      - x509: kubernetes-master-front-proxy-client-certificate-managed
      - file: kubernetes-master-service-account-public-key-managed
{%- if master.encryption.enabled %}
      - file: kubernetes-master-secrets-encryption-config-managed
{%- endif %}
{%- if k8s.audit.enabled %}
      - file: kubernetes-master-audit-policy-file-managed
      - file: kubernetes-master-audit-log-directory-managed
{%- endif %}
{%- if etcd_member %}
      - cmd: etcd-server-cluster-healthy-with-quorum
{%- endif %}
{%- else %}
      - file: kubernetes-master-{{ name | replace('kube-', '') }}-kubeconfig-managed
{%- endif %}
{%- endfor %}
