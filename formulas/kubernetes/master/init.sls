{%- from "kubernetes/map.jinja" import master with context %}
include:
  - kubernetes.master.pki
  - kubernetes.master.encryption
  - kubernetes.master.audit
  - kubernetes.master.kubeconfig
  - kubernetes.master.manifests
{%- if master.keepalived.enabled %}
  - kubernetes.master.keepalived
{%- endif %}
{%- if master.haproxy.enabled %}
  - kubernetes.master.haproxy
{%- endif %}
  - kubernetes.master.objects
  - kubernetes.master.apply
