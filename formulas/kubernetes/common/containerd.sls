{#- containerd, installed by kubernetes.common.runtime (the distribution's package or the
    upstream archives; the same config file and socket either way): the CRI runtime of
    the kubelet, systemd cgroups, the sandbox (pause) image from the cluster's image
    registry, and per-registry host configuration under certs_dir (the cluster's own
    registry, trusted with its CA). #}
{%- from "kubernetes/map.jinja" import common, k8s with context %}
{%- from "pki/macros.jinja" import ca_certificate with context %}
{%- set ctr = common.containerd %}
include:
  - kubernetes.common.kernel
  - kubernetes.common.pki
  - kubernetes.common.runtime

kubernetes-common-containerd-config-file-managed:
  file.managed:
    - name: {{ ctr.config_file }}
    - source: salt://kubernetes/files/containerd-config.toml.jinja
    - template: jinja
    - mode: '0644'
    - makedirs: true
    - context:
        sandbox_image: {{ common.image_registry }}/pause:{{ k8s.images.pause }}
        certs_dir: {{ ctr.certs_dir }}
    - require:
      - sls: kubernetes.common.runtime
{%- for registry in ctr.registries %}
{%- set dir = ctr.certs_dir ~ '/' ~ registry.host %}
{%- set id = 'kubernetes-common-containerd-registry-' ~ registry.host | replace(':', '-') %}

{{ id }}-directory-managed:
  file.directory:
    - name: {{ dir }}
    - mode: '0755'
    - makedirs: true
    - require:
      - sls: kubernetes.common.runtime
{%- if registry.get('ca') %}
{{ ca_certificate(id, dir ~ '/ca.crt', common.ssl, registry.ca,
    require=[{'file': id ~ '-directory-managed'}]) }}
{%- endif %}

{{ id }}-hosts-file-managed:
  file.managed:
    - name: {{ dir }}/hosts.toml
    - source: salt://kubernetes/files/containerd-hosts.toml.jinja
    - template: jinja
    - mode: '0644'
    - context:
        server: https://{{ registry.host }}
        ca: {{ (dir ~ '/ca.crt') if registry.get('ca') else '' }}
    - require:
      - file: {{ id }}-directory-managed
{%- endfor %}

kubernetes-common-containerd-service-running:
  service.running:
    - name: {{ ctr.service }}
    - enable: true
    - require:
      - cmd: kubernetes-common-kernel-module-overlay-loaded
    - watch:
      - sls: kubernetes.common.runtime
      - file: kubernetes-common-containerd-config-file-managed
