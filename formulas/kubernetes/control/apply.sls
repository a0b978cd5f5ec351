{#- kubernetes.control.apply: the OpenStack objects rendered by kubernetes.control.manifests
    applied with kubectl in the order of apply-plan.yaml, each rollout or Job awaited, the
    run stopped at the first failure, and a report event sent to the salt master (custom
    state stacksalt_kubernetes.applied, formulas/_states/). Only where
    kubernetes:control:apply is true, and only on one master (`applier`, by default the
    first of kubernetes:common:masters): the objects are cluster-wide. #}
{%- from "kubernetes/map.jinja" import common with context %}
{%- from "kubernetes/control/map.jinja" import control with context %}
{%- import_yaml "kubernetes/control/apply-defaults.yaml" as apply_defaults %}
{%- set opts = salt['slsutil.merge'](salt['defaults.deepcopy'](apply_defaults), control,
    strategy='recurse') %}
{%- set masters = common.masters | map(attribute='name') | list %}
{%- set applier = opts.applier or (masters | first) or common.hostname %}
{%- set plan = opts.manifest_dir ~ '/' ~ opts.plan_file %}
{%- if not control.enabled %}

kubernetes-control-apply-disabled:
  test.succeed_without_changes:
    - name: kubernetes:control:enabled is false on this minion; nothing rendered, nothing applied
{%- elif not opts.apply %}
include:
  - kubernetes.control.manifests

kubernetes-control-apply-switched-off:
  test.succeed_without_changes:
    - name: >-
        kubernetes:control:apply is false (_param:kubernetes_binaries_install): the objects
        are rendered under {{ opts.manifest_dir }}, none is applied
{%- elif common.hostname != applier %}
include:
  - kubernetes.control.manifests

kubernetes-control-apply-other-master:
  test.succeed_without_changes:
    - name: >-
        {{ common.hostname }} renders the objects; {{ applier }} applies them
        (kubernetes:control:applier, else the first of kubernetes:common:masters)
{%- else %}
include:
  - kubernetes.control.manifests

{#- state.apply of this SLS alone does not sync custom modules (a highstate does) #}
kubernetes-control-apply-state-module-synced:
  saltutil.sync_states:
    - reload_modules: true

kubernetes-control-objects-applied:
  stacksalt_kubernetes.applied:
    - name: {{ plan }}
    - kubectl: {{ opts.kubectl or common.binaries.bin_dir ~ '/kubectl' }}
    - kubeconfig: {{ opts.kubeconfig or common.config_dir ~ '/admin.conf' }}
    - namespace: {{ opts.namespace }}
    - state_file: {{ opts.state_file }}
    - rollout_timeout: {{ opts.rollout_timeout | int }}
    - wait_grace: {{ opts.wait_grace }}
    - field_manager: {{ opts.field_manager }}
    - event_tag: {{ opts.event_tag }}
    - require:
      - saltutil: kubernetes-control-apply-state-module-synced
      - sls: kubernetes.control.manifests
{%- endif %}
