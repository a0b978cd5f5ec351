{#- The minion cannot restart itself in the middle of the run that changed its
    configuration, so the restart is scheduled a few seconds after this run ends. #}
{%- from "salt/map.jinja" import minion with context %}
include:
  - salt.minion.config

salt-minion-service-running:
  service.running:
    - name: {{ minion.service }}
    - enable: true

salt-minion-service-restart-scheduled:
  cmd.run:
    - name: systemd-run --on-active=10 --unit=stacksalt-restart-{{ minion.service }} --collect systemctl restart {{ minion.service }}
    - onchanges:
      - file: salt-minion-config-file-managed
    - require:
      - service: salt-minion-service-running
