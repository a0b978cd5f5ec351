{#- The CNI network configuration of this node, from the model. (In Calico's own manifests
    the install-cni container writes it; here it only installs the CNI binaries and the
    conflist Salt writes is the one containerd reads.) The plugin reaches Calico's etcd with
    the node's client certificate and the Kubernetes API with the kubeconfig calico-node
    maintains next to this file. #}
{%- from "calico/map.jinja" import node, pki, etcd_endpoints with context %}
{%- set cni = node.cni %}
{%- set capabilities = {'portMappings': True} %}
{%- set portmap = {'type': 'portmap', 'snat': True, 'capabilities': capabilities} %}
{%- set conflist = {
    'name': cni.network_name,
    'cniVersion': cni.cni_version,
    'plugins': [
      {
        'type': 'calico',
        'log_level': cni.log_level,
        'log_file_path': cni.log_dir ~ '/cni.log',
        'datastore_type': 'etcdv3',
        'etcd_endpoints': etcd_endpoints,
        'etcd_ca_cert_file': pki.ca,
        'etcd_cert_file': pki.cert,
        'etcd_key_file': pki.key,
        'mtu': node.mtu,
        'ipam': {'type': 'calico-ipam'},
        'policy': {'type': 'k8s'},
        'kubernetes': {'kubeconfig': cni.conf_dir ~ '/calico-kubeconfig'},
      },
      portmap,
    ],
} %}
calico-node-cni-conf-directory-managed:
  file.directory:
    - name: {{ cni.conf_dir }}
    - mode: '0755'
    - makedirs: true

calico-node-cni-log-directory-managed:
  file.directory:
    - name: {{ cni.log_dir }}
    - mode: '0755'
    - makedirs: true

calico-node-cni-conflist-managed:
  file.serialize:
    - name: {{ cni.conf_dir }}/{{ cni.conf_name }}
    - serializer: json
    - dataset: {{ conflist | json }}
    - mode: '0644'
    - require:
      - file: calico-node-cni-conf-directory-managed
