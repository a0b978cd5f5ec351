{#- keepalived holds the API's virtual IP on one master (VRRP, unicast to the other
    masters); priorities follow the masters' order in the model. It follows haproxy: a
    master without a running haproxy gives the address up. #}
{%- from "kubernetes/map.jinja" import common, master with context %}
{%- set ka = master.keepalived %}
{#- The interface comes from the model only, so the render is the same wherever it is made. #}
{%- set ns = namespace(index=None, interface=ka.interface) %}
{%- for m in common.masters %}
{%- if m.name == common.hostname %}{% set ns.index = loop.index0 %}{% endif %}
{%- endfor %}
kubernetes-master-keepalived-package-installed:
  pkg.installed:
    - pkgs: {{ ka.pkgs | json }}
{%- if ns.index is none or not ns.interface %}

kubernetes-master-keepalived-config-file-managed:
  test.fail_without_changes:
    - name: >-
        keepalived for the API VIP {{ common.cluster.api.vip }}:
{%- if ns.index is none %}
        {{ common.hostname }} is not in kubernetes:common:masters.
{%- else %}
        kubernetes:master:keepalived:interface is not set for {{ common.hostname }}
        (the interface holding {{ common.address }}; _param:kubernetes_api_vip_interface).
{%- endif %}
{%- else %}

kubernetes-master-keepalived-config-file-managed:
  file.managed:
    - name: {{ ka.config_file }}
    - source: salt://kubernetes/files/keepalived.conf.jinja
    - template: jinja
    - mode: '0640'
    - makedirs: true
    - context:
        router_id: {{ common.hostname }}
        interface: {{ ns.interface }}
        vip: {{ common.cluster.api.vip }}
        virtual_router_id: {{ ka.virtual_router_id }}
        advert_int: {{ ka.advert_int }}
        priority: {{ ka.priority - ns.index * ka.priority_step }}
        state: {{ 'MASTER' if ns.index == 0 else 'BACKUP' }}
        address: {{ common.address }}
        peers: {{ common.masters | map(attribute='host') | reject('equalto', common.address) | list | json }}
        haproxy_service: {{ master.haproxy.service }}
    - require:
      - pkg: kubernetes-master-keepalived-package-installed

kubernetes-master-keepalived-service-running:
  service.running:
    - name: {{ ka.service }}
    - enable: true
    - watch:
      - file: kubernetes-master-keepalived-config-file-managed
{%- endif %}
