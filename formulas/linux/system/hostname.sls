{%- from "linux/map.jinja" import system with context %}
linux-system-hostname-file-managed:
  file.managed:
    - name: /etc/hostname
    - contents: {{ system.name }}

linux-system-hostname-applied:
  cmd.run:
    - name: hostname {{ system.name }}
    - unless: test "$(hostname)" = "{{ system.name }}"
    - require:
      - file: linux-system-hostname-file-managed
