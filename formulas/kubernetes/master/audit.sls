{#- The apiserver's audit log: the Policy (audit.k8s.io/v1) of kubernetes:master:audit,
    built and checked by the stacksalt_objects module (no rule may log a body of Secrets,
    ConfigMaps or tokens), in its own directory (0700, mounted read-only into the pod: a
    file mounted alone would keep its old inode after Salt replaces it), and the log's
    directory (0700, mounted read-write). Flags, mounts and the policy's hash annotation
    (a changed policy restarts the apiserver, which reads it only when it starts):
    files/objects/kube-apiserver.yaml. #}
{%- from "kubernetes/map.jinja" import k8s with context %}
{%- set audit = k8s.audit %}
{%- if audit.enabled %}

kubernetes-master-audit-policy-directory-managed:
  file.directory:
    - name: {{ audit.dir }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: true

kubernetes-master-audit-policy-file-managed:
  file.serialize:
    - name: {{ audit.policy_path }}
    - serializer: yaml
    - dataset: {{ audit.policy | json }}
    - user: root
    - group: root
    - mode: '0600'
    - require:
      - file: kubernetes-master-audit-policy-directory-managed

kubernetes-master-audit-log-directory-managed:
  file.directory:
    - name: {{ audit.log_dir }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: true
{%- else %}

kubernetes-master-audit-switched-off:
  test.succeed_without_changes:
    - name: kubernetes:master:audit:enabled is false; the apiserver keeps no audit log
{%- endif %}
