{#- A master restarted in the middle of a run would drop the returns of every minion, so a
    changed configuration restarts the master a few seconds after this run, outside it. #}
{%- from "salt/map.jinja" import master with context %}
include:
  - salt.master.config

salt-master-service-running:
  service.running:
    - name: {{ master.service }}
    - enable: true

salt-master-service-restart-scheduled:
  cmd.run:
    - name: systemd-run --on-active=10 --unit=stacksalt-restart-{{ master.service }} --collect systemctl restart {{ master.service }}
    - onchanges:
      - file: salt-master-config-file-managed
    - require:
      - service: salt-master-service-running
