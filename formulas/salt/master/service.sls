{#- A master restarted in the middle of a run would drop the returns of every minion, so a
    changed configuration restarts the master from a transient systemd unit once the local
    minion's run has ended. #}
{%- from "salt/map.jinja" import master with context %}
include:
  - salt.master.config

salt-master-service-running:
  service.running:
    - name: {{ master.service }}
    - enable: true

salt-master-restart-script-managed:
  file.managed:
    - name: /usr/local/sbin/stacksalt-restart-{{ master.service }}
    - source: salt://salt/files/restart-after-jobs.sh.jinja
    - template: jinja
    - mode: '0755'
    - context:
        service: {{ master.service }}

salt-master-service-restart-scheduled:
  cmd.run:
    - name: >-
        systemd-run --unit=stacksalt-restart-{{ master.service }} --collect
        /usr/local/sbin/stacksalt-restart-{{ master.service }}
    - onchanges:
      - file: salt-master-config-file-managed
    - require:
      - service: salt-master-service-running
      - file: salt-master-restart-script-managed
    - order: last
