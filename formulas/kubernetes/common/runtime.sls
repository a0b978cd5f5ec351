{#- The container runtime's programs: the distribution's packages (containerd:pkgs), or,
    with containerd:archive:install, the upstream release archives of containerd, runc
    and the CNI plugins, each downloaded from its URL template and checked against the
    model's sha256 for its version and architecture, and a systemd unit for containerd
    (the distribution's unit comes with its package). #}
{%- from "kubernetes/map.jinja" import common with context %}
{%- set ctr = common.containerd %}
{%- set arc = ctr.archive %}
{%- if not arc.install %}
kubernetes-common-containerd-package-installed:
  pkg.installed:
    - pkgs: {{ ctr.pkgs | json }}
{%- else %}
{%- set pins = {} %}
{%- for part in ('containerd', 'runc', 'cni_plugins') %}
{%- set spec = arc[part] %}
{%- set version = spec.version | string %}
{%- set sha256 = (spec.checksums or {}).get(version, {}).get(common.arch) %}
{%- if not spec.version or not spec.url or not sha256 %}
{{ raise("kubernetes:common:containerd:archive:" ~ part ~ ":checksums has no sha256 for "
    ~ version ~ " " ~ common.arch ~ " (or its version or url is unset): add the pin to the "
    ~ "model (system.kubernetes.checksums)") }}
{%- endif %}
{%- do pins.update({part: {
    'version': version,
    'url': spec.url | replace('{version}', version) | replace('{arch}', common.arch),
    'sha256': sha256} }) %}
{%- endfor %}

kubernetes-common-containerd-archive-managed:
  file.managed:
    - name: {{ arc.cache_dir }}/containerd.tar.gz
    - source: {{ pins.containerd.url }}
    - source_hash: sha256={{ pins.containerd.sha256 }}
    - mode: '0644'
    - makedirs: true

kubernetes-common-containerd-binaries-installed:
  stacksalt_archive.installed:
    - name: containerd {{ pins.containerd.version }}
    - archive: {{ arc.cache_dir }}/containerd.tar.gz
    - members:
{%- for name in arc.containerd.binaries %}
        bin/{{ name }}: {{ arc.containerd.bin_dir }}/{{ name }}
{%- endfor %}
    - mode: '0755'
    - require:
      - file: kubernetes-common-containerd-archive-managed

kubernetes-common-runc-binary-managed:
  file.managed:
    - name: {{ arc.runc.path }}
    - source: {{ pins.runc.url }}
    - source_hash: sha256={{ pins.runc.sha256 }}
    - mode: '0755'
    - makedirs: true

kubernetes-common-cni-plugins-archive-managed:
  file.managed:
    - name: {{ arc.cache_dir }}/cni-plugins.tgz
    - source: {{ pins.cni_plugins.url }}
    - source_hash: sha256={{ pins.cni_plugins.sha256 }}
    - mode: '0644'
    - makedirs: true

kubernetes-common-cni-plugins-installed:
  stacksalt_archive.installed:
    - name: CNI plugins {{ pins.cni_plugins.version }}
    - archive: {{ arc.cache_dir }}/cni-plugins.tgz
    - members:
{%- for name in arc.cni_plugins.plugins %}
        ./{{ name }}: {{ arc.cni_plugins.dir }}/{{ name }}
{%- endfor %}
    - mode: '0755'
    - require:
      - file: kubernetes-common-cni-plugins-archive-managed

kubernetes-common-containerd-unit-file-managed:
  file.managed:
    - name: {{ arc.unit_file }}
    - source: salt://kubernetes/files/containerd.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        containerd: {{ arc.containerd.bin_dir }}/containerd

kubernetes-common-containerd-unit-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: kubernetes-common-containerd-unit-file-managed
{%- endif %}
