{#- etcd's access control keyed on the client certificate's CN: every member gets the root
    identity's client certificate (CN=root, key 0600 etcd:etcd like the member's own keys:
    the etcd user holds all of etcd's data anyway; for the operator and the state below);
    the first member of the model's member list makes the roles and users what the model
    says and enables auth (custom state formulas/_states/stacksalt_etcd.py), once etcd
    answers with quorum. Calico's identity (CN=calico) then reads and writes /calico/ only;
    Kubernetes' objects under /registry/ are the apiserver's. #}
{%- from "etcd/map.jinja" import server with context %}
{%- from "pki/macros.jinja" import key_and_certificate with context %}
{%- set pki = server.pki_dir %}
{%- set auth = server.auth %}
include:
  - pki.check
  - etcd.server.certificates
  - etcd.server.service

{{ key_and_certificate('etcd-server-root-client', pki ~ '/root-client', server.ssl,
    server.ssl.root_client_policy, 'root', (pki ~ '/ca.crt', 'etcd-server-ca-certificate-managed'),
    key_user=server.user, key_group=server.group, cert_group=server.group,
    require=[{'file': 'etcd-server-pki-directory-managed'}]) }}
{%- if auth.enabled and server.members and server.members[0].name == server.name %}

etcd-server-auth-enabled:
  stacksalt_etcd.auth_enabled:
    - endpoints: https://127.0.0.1:{{ server.bind.client_port }}
    - cacert: {{ pki }}/ca.crt
    - cert: {{ pki }}/root-client.crt
    - key: {{ pki }}/root-client.key
    - probe_cert: {{ pki }}/healthcheck-client.crt
    - probe_key: {{ pki }}/healthcheck-client.key
    - etcdctl: {{ auth.etcdctl }}
    - wait: {{ auth.wait }}
    - roles: {{ auth.roles | json }}
    - users: {{ auth.users | json }}
    - require:
      - service: etcd-server-service-running
      - x509: etcd-server-root-client-certificate-managed
      - x509: etcd-server-healthcheck-client-certificate-managed
{%- endif %}
