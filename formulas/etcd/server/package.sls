{#- etcd's programs: the distribution's packages (pkgs, with their etcd user and unit), or,
    with archive:install, the upstream release archive (checked against the model's sha256
    for its version and architecture), the etcd user, the data directory and a systemd
    unit that reads the same config_file. #}
{%- from "etcd/map.jinja" import server with context %}
{%- set arc = server.archive %}
{%- if not arc.install %}
etcd-server-packages-installed:
  pkg.installed:
    - pkgs: {{ server.pkgs | json }}
{%- else %}
{%- set version = arc.version | string %}
{%- set sha256 = (arc.checksums or {}).get(version, {}).get(server.arch) %}
{%- if not arc.version or not arc.url or not sha256 %}
{{ raise("etcd:server:archive:checksums has no sha256 for " ~ version ~ " " ~ server.arch
    ~ " (or its version or url is unset): add the pin to the model "
    ~ "(system.kubernetes.checksums)") }}
{%- endif %}
{%- set top = 'etcd-v' ~ version ~ '-linux-' ~ server.arch %}
etcd-server-group-present:
  group.present:
    - name: {{ server.group }}
    - system: true

etcd-server-user-present:
  user.present:
    - name: {{ server.user }}
    - gid: {{ server.group }}
    - system: true
    - home: {{ server.data_dir }}
    - createhome: false
    - shell: /usr/sbin/nologin
    - require:
      - group: etcd-server-group-present

etcd-server-data-directory-managed:
  file.directory:
    - name: {{ server.data_dir }}
    - user: {{ server.user }}
    - group: {{ server.group }}
    - mode: '0700'
    - require:
      - user: etcd-server-user-present

etcd-server-archive-managed:
  file.managed:
    - name: {{ arc.cache_dir }}/etcd.tar.gz
    - source: {{ arc.url | replace('{version}', version) | replace('{arch}', server.arch) }}
    - source_hash: sha256={{ sha256 }}
    - mode: '0644'
    - makedirs: true

etcd-server-binaries-installed:
  stacksalt_archive.installed:
    - name: etcd {{ version }}
    - archive: {{ arc.cache_dir }}/etcd.tar.gz
    - members:
{%- for name in arc.binaries %}
        {{ top }}/{{ name }}: {{ arc.bin_dir }}/{{ name }}
{%- endfor %}
    - mode: '0755'
    - require:
      - file: etcd-server-archive-managed

etcd-server-unit-file-managed:
  file.managed:
    - name: {{ arc.unit_file }}
    - source: salt://etcd/files/etcd.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        etcd: {{ arc.bin_dir }}/etcd
        config_file: {{ server.config_file }}
        user: {{ server.user }}

etcd-server-unit-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: etcd-server-unit-file-managed
{%- endif %}
