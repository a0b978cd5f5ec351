{#- Kernel parameters: persisted in one file, applied only where the live value differs
    (Salt's sysctl.present writes /proc/sys even when the value already matches, which a
    container's read-only /proc/sys refuses). #}
{%- from "linux/map.jinja" import system with context %}
{%- set sysctl = system.kernel.sysctl %}
{%- if sysctl %}
linux-system-sysctl-file-managed:
  file.managed:
    - name: {{ system.kernel.sysctl_file }}
    - source: salt://linux/files/sysctl.conf.jinja
    - template: jinja
    - context:
        sysctl: {{ sysctl | json }}

linux-system-sysctl-applied:
  cmd.run:
    - name: sysctl -p {{ system.kernel.sysctl_file }}
    - unless: >-
{%- for key, value in sysctl | dictsort %}
        test "$(sysctl -n {{ key }} | tr -s '\t ' ' ')" = "{{ value | string | replace('\t', ' ') }}" &&
{%- endfor %}
        true
    - require:
      - file: linux-system-sysctl-file-managed
{%- endif %}
