{%- from "linux/map.jinja" import system with context %}
linux-system-timezone-package-installed:
  pkg.installed:
    - name: {{ system.timezone_pkg }}

linux-system-timezone-localtime-symlinked:
  file.symlink:
    - name: /etc/localtime
    - target: /usr/share/zoneinfo/{{ system.timezone }}
    - force: true
    - require:
      - pkg: linux-system-timezone-package-installed

linux-system-timezone-file-managed:
  file.managed:
    - name: /etc/timezone
    - contents: {{ system.timezone }}
