{#- haproxy on every master: <vip>:<port> to the apiservers of all masters (TCP, health
    checked on /readyz). It binds the VIP on masters that do not hold it too
    (net.ipv4.ip_nonlocal_bind=1 from the model), so a failover needs no restart. #}
{%- from "kubernetes/map.jinja" import common, master with context %}
{%- set hp = master.haproxy %}
kubernetes-master-haproxy-package-installed:
  pkg.installed:
    - pkgs: {{ hp.pkgs | json }}

kubernetes-master-haproxy-config-file-managed:
  file.managed:
    - name: {{ hp.config_file }}
    - source: salt://kubernetes/files/haproxy.cfg.jinja
    - template: jinja
    - mode: '0644'
    - check_cmd: /usr/sbin/haproxy -c -f
    - context:
        bind: {{ common.cluster.api.vip }}:{{ common.cluster.api.port }}
        backends: {{ common.masters | json }}
        backend_port: {{ master.apiserver.port }}
    - require:
      - pkg: kubernetes-master-haproxy-package-installed

kubernetes-master-haproxy-service-running:
  service.running:
    - name: {{ hp.service }}
    - enable: true
    - reload: true
    - watch:
      - file: kubernetes-master-haproxy-config-file-managed
