{#- kubelet and kubectl from <base_url>/v<version>/bin/linux/<arch>/<name>, each checked
    against its pinned sha256 before it is installed. Only with binaries:install (the lab,
    which cannot download them, switches it off). #}
{%- from "kubernetes/map.jinja" import common with context %}
{%- set bin = common.binaries %}
{%- if bin.install %}
{%- set version = common.version | string %}
{%- set pins = bin.checksums.get(version, {}).get(common.arch, {}) %}
{%- for name in bin.names %}
{%- if not pins.get(name) %}
{{ raise("kubernetes:common:binaries:checksums has no sha256 for " ~ name ~ " " ~ version
    ~ " " ~ common.arch ~ ": add the pin to the model (system.kubernetes.checksums)") }}
{%- endif %}
kubernetes-common-{{ name }}-binary-managed:
  file.managed:
    - name: {{ bin.bin_dir }}/{{ name }}
    - source: {{ bin.base_url }}/v{{ version }}/bin/linux/{{ common.arch }}/{{ name }}
    - source_hash: sha256={{ pins[name] }}
    - mode: '0755'
    - makedirs: true
{%- endfor %}
{%- endif %}
