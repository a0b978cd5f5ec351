{#- The kubelet: its KubeletConfiguration, its serving certificate and its client identity
    system:node:<hostname> (O=system:nodes, fixed by the CA's policy) in kubelet.conf via the
    API's virtual IP, and its systemd unit. rotateCertificates is off: Salt renews the
    certificates. Swap is turned off before the service starts (kubernetes.common.swap).
    The service runs only where the binaries are installed. #}
{%- from "kubernetes/map.jinja" import common, pool, k8s with context %}
{%- from "pki/macros.jinja" import key_and_certificate with context %}
{%- from "kubernetes/macros.jinja" import kubeconfig with context %}
{%- set kubelet = pool.kubelet %}
{%- set ssl = common.ssl %}
{%- set config_dir = kubelet.config_file.rsplit('/', 1)[0] %}
{%- set node_name = common.hostname %}
{%- set ca = (common.pki_dir ~ '/ca.crt', 'kubernetes-common-ca-certificate-managed') %}
{%- set config = {
    'apiVersion': 'kubelet.config.k8s.io/v1beta1',
    'kind': 'KubeletConfiguration',
    'authentication': {
        'anonymous': {'enabled': false},
        'webhook': {'enabled': true, 'cacheTTL': '0s'},
        'x509': {'clientCAFile': common.pki_dir ~ '/ca.crt'},
    },
    'authorization': {
        'mode': 'Webhook',
        'webhook': {'cacheAuthorizedTTL': '0s', 'cacheUnauthorizedTTL': '0s'},
    },
    'cgroupDriver': 'systemd',
    'clusterDNS': [common.cluster.dns_ip],
    'clusterDomain': common.cluster.domain,
    'containerRuntimeEndpoint': 'unix://' ~ common.containerd.socket,
    'staticPodPath': common.manifests_dir,
    'rotateCertificates': false,
    'serverTLSBootstrap': false,
    'tlsCertFile': kubelet.pki_dir ~ '/kubelet.crt',
    'tlsPrivateKeyFile': kubelet.pki_dir ~ '/kubelet.key',
    'readOnlyPort': 0,
    'healthzBindAddress': '127.0.0.1',
    'healthzPort': 10248,
    'resolvConf': kubelet.resolv_conf,
    'maxPods': kubelet.max_pods,
    'registerWithTaints': pool.taints,
} %}
{#- failSwapOn (and memorySwap where swap stays on): kubernetes:common:swap #}
{%- do config.update(k8s.kubelet_swap) %}
include:
  - pki.check
  - kubernetes.common
  - kubernetes.common.swap
{%- if common.binaries.install %}
  - kubernetes.common.binaries
{%- endif %}

kubernetes-pool-kubelet-config-directory-managed:
  file.directory:
    - name: {{ config_dir }}
    - mode: '0700'

kubernetes-pool-kubelet-pki-directory-managed:
  file.directory:
    - name: {{ kubelet.pki_dir }}
    - mode: '0700'
    - require:
      - file: kubernetes-pool-kubelet-config-directory-managed

kubernetes-pool-kubelet-config-file-managed:
  file.serialize:
    - name: {{ kubelet.config_file }}
    - serializer: yaml
    - dataset: {{ config | json }}
    - mode: '0644'
    - require:
      - file: kubernetes-pool-kubelet-config-directory-managed
{{ key_and_certificate('kubernetes-pool-kubelet-server', kubelet.pki_dir ~ '/kubelet', ssl,
    ssl.node_server_policy, node_name, ca,
    san=['DNS:' ~ node_name, 'DNS:' ~ k8s.fqdn, 'IP:' ~ common.address],
    require=[{'file': 'kubernetes-pool-kubelet-pki-directory-managed'}]) }}
{{ key_and_certificate('kubernetes-pool-kubelet-client', kubelet.pki_dir ~ '/kubelet-client', ssl,
    ssl.node_client_policy, 'system:node:' ~ node_name, ca, O='system:nodes',
    require=[{'file': 'kubernetes-pool-kubelet-pki-directory-managed'}]) }}
{{ kubeconfig('kubernetes-pool-kubelet-kubeconfig-managed', common.config_dir ~ '/kubelet.conf',
    common.cluster.name, k8s.server, common.pki_dir ~ '/ca.crt', 'system:node:' ~ node_name,
    kubelet.pki_dir ~ '/kubelet-client',
    [{'file': 'kubernetes-common-ca-certificate-managed'},
     {'x509': 'kubernetes-pool-kubelet-client-certificate-managed'}]) }}

kubernetes-pool-kubelet-unit-file-managed:
  file.managed:
    - name: {{ kubelet.unit_file }}
    - source: salt://kubernetes/files/kubelet.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        kubelet: {{ common.binaries.bin_dir }}/kubelet
        config_file: {{ kubelet.config_file }}
        kubeconfig: {{ common.config_dir }}/kubelet.conf
        node_name: {{ node_name }}
        node_ip: {{ common.address }}
        node_labels: {{ k8s.node_labels | json }}
        runtime_service: {{ common.containerd.service }}

kubernetes-pool-kubelet-unit-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: kubernetes-pool-kubelet-unit-file-managed
{%- if common.binaries.install %}

kubernetes-pool-kubelet-service-running:
  service.running:
    - name: {{ kubelet.service }}
    - enable: true
    - require:
      - file: kubernetes-common-kubelet-binary-managed
      - service: kubernetes-common-containerd-service-running
      - cmd: kubernetes-pool-kubelet-unit-reloaded
{%- if common.swap.disabled %}
      {#- the kubelet exits on a node with swap (failSwapOn) #}
      - cmd: kubernetes-common-swap-turned-off
      - file: kubernetes-common-swap-fstab-entries-commented
      - service: kubernetes-common-swap-target-masked
      - cmd: kubernetes-common-swap-units-masked
{%- endif %}
    - watch:
      - file: kubernetes-common-kubelet-binary-managed
      - file: kubernetes-pool-kubelet-config-file-managed
      - file: kubernetes-pool-kubelet-unit-file-managed
      - file: kubernetes-pool-kubelet-kubeconfig-managed
      - x509: kubernetes-pool-kubelet-server-certificate-managed
{%- endif %}
