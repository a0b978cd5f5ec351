{#- calicoctl: its configuration (etcdv3 datastore over TLS) on every node, and the binary,
    pinned by URL and sha256, only where binaries are installed (not in the lab). #}
{%- from "calico/map.jinja" import node, pki, etcd_endpoints with context %}
{%- set ctl = node.calicoctl %}
{%- set config = {
    'apiVersion': 'projectcalico.org/v3',
    'kind': 'CalicoAPIConfig',
    'metadata': {},
    'spec': {
      'datastoreType': 'etcdv3',
      'etcdEndpoints': etcd_endpoints,
      'etcdCACertFile': pki.ca,
      'etcdCertFile': pki.cert,
      'etcdKeyFile': pki.key,
    },
} %}
calico-node-config-directory-managed:
  file.directory:
    - name: {{ node.config_dir }}
    - mode: '0755'
    - makedirs: true

calico-node-calicoctl-config-managed:
  file.serialize:
    - name: {{ node.config_dir }}/calicoctl.cfg
    - serializer: yaml
    - dataset: {{ config | json }}
    - mode: '0644'
    - require:
      - file: calico-node-config-directory-managed
{%- if ctl.install %}
{%- set sha256 = ctl.checksums.get(node.version, {}).get(node.arch) %}
{%- if not sha256 %}
{{ raise('calico:node:calicoctl:checksums has no sha256 for calicoctl ' ~ node.version ~ ' ' ~ node.arch) }}
{%- endif %}

calico-node-calicoctl-binary-installed:
  file.managed:
    - name: {{ ctl.bin_dir }}/calicoctl
    - source: {{ ctl.base_url }}/v{{ node.version }}/calicoctl-linux-{{ node.arch }}
    - source_hash: sha256={{ sha256 }}
    - mode: '0755'
    - makedirs: true
{%- endif %}
