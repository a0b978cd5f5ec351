{%- from "etcd/map.jinja" import server with context %}
{%- set health = server.health.etcdctl ~ ' --endpoints=https://127.0.0.1:' ~ server.bind.client_port
    ~ ' --cacert=' ~ server.pki_dir ~ '/ca.crt --cert=' ~ server.pki_dir ~ '/healthcheck-client.crt'
    ~ ' --key=' ~ server.pki_dir ~ '/healthcheck-client.key --command-timeout=5s endpoint health' %}
include:
  - etcd.server.package
  - etcd.server.certificates
  - etcd.server.config

etcd-server-service-running:
  service.running:
    - name: {{ server.service }}
    - enable: true
    - watch:
      - sls: etcd.server.package
      - file: etcd-server-config-file-managed
{%- for name in ('server', 'peer') %}
      - x509: etcd-server-{{ name }}-certificate-managed
{%- endfor %}

{#- This member serves a linearizable read (what `etcdctl endpoint health` does) only once
    the cluster has a leader: a quorum of members. Everything that uses etcd on this node
    (the apiserver's manifest, the cluster's objects) requires this state. Bounded: on a
    first converge of one master alone the others are not up yet, so it fails after
    attempts x interval seconds; `salt '*' state.apply` starts the members together. #}
etcd-server-cluster-healthy-with-quorum:
  cmd.run:
    - name: {{ health }}
    - env:
      - ETCDCTL_API: '3'
    {#- healthy already: no change (a second state.apply changes nothing) #}
    - unless: {{ health }}
    - retry:
        attempts: {{ server.health.attempts }}
        interval: {{ server.health.interval }}
        until: true
    - require:
      - service: etcd-server-service-running
      - x509: etcd-server-healthcheck-client-certificate-managed
