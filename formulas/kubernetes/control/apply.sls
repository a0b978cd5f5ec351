{#- kubernetes.control.apply: the OpenStack objects rendered by kubernetes.control.manifests
    applied with kubectl in the order of apply-plan.yaml, each rollout or Job awaited, the
    run stopped at the first failure, and a report event sent to the salt master (custom
    state stacksalt_kubernetes.applied, formulas/_states/). Only where
    kubernetes:control:apply is true, and only on one master (`applier`, by default the
    first of kubernetes:common:masters): the objects are cluster-wide. #}
{%- from "kubernetes/map.jinja" import common with context %}
{%- from "kubernetes/control/map.jinja" import control with context %}
{%- import_yaml "kubernetes/control/apply-defaults.yaml" as apply_defaults %}
{%- set ctl = salt['slsutil.merge'](salt['defaults.deepcopy'](apply_defaults), control,
    strategy='recurse') %}
{%- set masters = common.masters | map(attribute='name') | list %}
{%- set applier = ctl.applier or (masters | first) or common.hostname %}
{%- set plan = ctl.manifest_dir ~ '/' ~ ctl.plan_file %}
{%- if not control.enabled %}

kubernetes-control-apply-disabled:
  test.succeed_without_changes:
    - name: kubernetes:control:enabled is false on this minion; nothing rendered, nothing applied
{%- elif not ctl.apply %}
include:
  - kubernetes.control.manifests

kubernetes-control-apply-switched-off:
  test.succeed_without_changes:
    - name: >-
        kubernetes:control:apply is false (_param:kubernetes_binaries_install): the objects
        are rendered under {{ ctl.manifest_dir }}, none is applied
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

{#- state.apply of this SLS alone does not sync custom modules (a highstate does): this
    state does, on a real run. A dry run (test=True) runs no state, so on a minion that
    never had the module it can only say so. #}
kubernetes-control-apply-state-module-synced:
  saltutil.sync_states:
    - reload_modules: true
{%- if opts.get('test') and not salt['sys.list_state_functions']('stacksalt_kubernetes') %}

kubernetes-control-objects-applied:
  test.show_notification:
    - name: {{ plan }}
    - text: >-
        dry run: the state module stacksalt_kubernetes is not synced to this minion yet, so a dry
        run cannot list the objects: run `saltutil.sync_states` (a real run or a highstate
        syncs it) and the dry run again
{%- else %}

kubernetes-control-objects-applied:
  stacksalt_kubernetes.applied:
    - name: {{ plan }}
    - kubectl: {{ ctl.kubectl or common.binaries.bin_dir ~ '/kubectl' }}
    - kubeconfig: {{ ctl.kubeconfig or common.config_dir ~ '/admin.conf' }}
    - namespace: {{ ctl.namespace }}
    - state_file: {{ ctl.state_file }}
    - rollout_timeout: {{ ctl.rollout_timeout | int }}
    - wait_grace: {{ ctl.wait_grace }}
    - field_manager: {{ ctl.field_manager }}
    - event_tag: {{ ctl.event_tag }}
    - require:
      - saltutil: kubernetes-control-apply-state-module-synced
      - sls: kubernetes.control.manifests
{%- endif %}
{%- endif %}
