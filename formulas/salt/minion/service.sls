{#- The minion cannot restart itself in the middle of the run that changed its
    configuration, so the restart is handed to a transient systemd unit that waits until the run ended. #}
{%- from "salt/map.jinja" import minion with context %}
include:
  - salt.minion.config

salt-minion-service-running:
  service.running:
    - name: {{ minion.service }}
    - enable: true

salt-minion-restart-script-managed:
  file.managed:
    - name: /usr/local/sbin/stacksalt-restart-{{ minion.service }}
    - source: salt://salt/files/restart-after-jobs.sh.jinja
    - template: jinja
    - mode: '0755'
    - context:
        service: {{ minion.service }}

salt-minion-service-restart-scheduled:
  cmd.run:
    - name: >-
        systemd-run --unit=stacksalt-restart-{{ minion.service }} --collect
        /usr/local/sbin/stacksalt-restart-{{ minion.service }}
    - onchanges:
      - file: salt-minion-config-file-managed
    - require:
      - service: salt-minion-service-running
      - file: salt-minion-restart-script-managed
    - order: last
