{#- kube-proxy as a static pod with its KubeProxyConfiguration (clusterCIDR = the pod
    network) and its kubeconfig (client system:kube-proxy, subject fixed by the CA's
    policy) via the API's virtual IP. #}
{%- from "kubernetes/map.jinja" import common, pool, k8s with context %}
{%- from "pki/macros.jinja" import key_and_certificate with context %}
{%- from "kubernetes/macros.jinja" import kubeconfig with context %}
{%- set kp = pool.kube_proxy %}
{%- set kubeconfig_file = common.config_dir ~ '/kube-proxy.conf' %}
{%- set config_file = kp.config_dir ~ '/config.conf' %}
{%- set cert = common.pki_dir ~ '/kubeconfig/kube-proxy' %}
{%- set ca = (common.pki_dir ~ '/ca.crt', 'kubernetes-common-ca-certificate-managed') %}
{%- set config = {
    'apiVersion': 'kubeproxy.config.k8s.io/v1alpha1',
    'kind': 'KubeProxyConfiguration',
    'bindAddress': '0.0.0.0',
    'clientConnection': {'kubeconfig': kubeconfig_file},
    'clusterCIDR': common.cluster.pod_cidr,
    'healthzBindAddress': '0.0.0.0:' ~ kp.healthz_port,
    'hostnameOverride': common.hostname,
    'metricsBindAddress': '127.0.0.1:' ~ kp.metrics_port,
    'mode': kp.mode,
} %}
{%- import_yaml "kubernetes/files/objects/kube-proxy.yaml" as pod with context %}
include:
  - pki.check
  - kubernetes.common.pki

kubernetes-pool-kube-proxy-config-directory-managed:
  file.directory:
    - name: {{ kp.config_dir }}
    - mode: '0755'

kubernetes-pool-kube-proxy-config-file-managed:
  file.serialize:
    - name: {{ config_file }}
    - serializer: yaml
    - dataset: {{ config | json }}
    - mode: '0644'
    - require:
      - file: kubernetes-pool-kube-proxy-config-directory-managed
{{ key_and_certificate('kubernetes-pool-kube-proxy-client', cert, common.ssl,
    common.ssl.proxy_client_policy, 'system:kube-proxy', ca,
    require=[{'file': 'kubernetes-common-kubeconfig-pki-directory-managed'}]) }}
{{ kubeconfig('kubernetes-pool-kube-proxy-kubeconfig-managed', kubeconfig_file,
    common.cluster.name, k8s.server, common.pki_dir ~ '/ca.crt', 'system:kube-proxy', cert,
    [{'file': 'kubernetes-common-ca-certificate-managed'},
     {'x509': 'kubernetes-pool-kube-proxy-client-certificate-managed'}]) }}

{#- the manifest carries the fingerprint of the config and kubeconfig (with its embedded
    client certificate) as they are when it runs: a renewal restarts kube-proxy #}
kubernetes-pool-kube-proxy-manifest-managed:
  stacksalt_static_pod.manifest:
    - name: {{ common.manifests_dir }}/kube-proxy.yaml
    - dataset: {{ pod | json }}
    - mode: '0600'
    - require:
      - file: kubernetes-common-manifests-directory-managed
      - file: kubernetes-pool-kube-proxy-config-file-managed
      - file: kubernetes-pool-kube-proxy-kubeconfig-managed
