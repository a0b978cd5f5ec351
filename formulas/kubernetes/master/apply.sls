{#- kubernetes.master.apply: the one plan kubernetes.master.objects writes, applied in its
    order by the custom state stacksalt_kubernetes.applied (formulas/_states/): kubectl or
    calicoctl per step, each rollout, Job or node registration awaited, the run stopped at
    the first failure, and a report event sent to the salt master. Only where
    kubernetes:master:objects:apply is true, and only on one master (`applier`, by default
    the first of kubernetes:common:masters): the objects are cluster-wide. #}
{%- if 'stacksalt_objects.settings' not in salt %}
{{ raise("the execution module stacksalt_objects (formulas/_modules) is not on this minion: "
    ~ "run saltutil.sync_modules (a highstate syncs it)") }}
{%- endif %}
{%- set objects = salt['stacksalt_objects.settings']() %}
{%- set hostname = salt['pillar.get']('kubernetes:common:hostname') %}
{%- set binaries = salt['pillar.get']('kubernetes:common:binaries:install', False) %}
{#- the node's other roles the apply needs, as they are enabled (see "Order of the first
    converge" in README.md): included, so the requisites below exist in any rendering #}
{%- set etcd_member = salt['pillar.get']('etcd:server:enabled', False) %}
{%- set calico_node = salt['pillar.get']('calico:node:enabled', False) %}
{%- if not objects.enabled %}

kubernetes-master-apply-nothing-to-apply:
  test.succeed_without_changes:
    - name: this minion is no Kubernetes master and renders no OpenStack role; nothing to apply
{%- else %}
{%- set plan = objects.dir ~ '/' ~ objects.plan_file %}
include:
  - kubernetes.master.objects
{%- if objects.apply and hostname == objects.applier %}
  - kubernetes.master.kubeconfig
  - kubernetes.master.manifests
  - kubernetes.pool.kubelet
{%- if binaries %}
  - kubernetes.common.binaries
{%- endif %}
{%- if calico_node %}
  - calico.node.certificates
  - calico.node.calicoctl
{%- endif %}
{%- if etcd_member %}
  - etcd.server.service
{%- endif %}
{%- endif %}
{%- if not objects.apply %}

kubernetes-master-apply-switched-off:
  test.succeed_without_changes:
    - name: >-
        kubernetes:master:objects:apply is false (_param:kubernetes_binaries_install): the
        objects are written under {{ objects.dir }}, none is applied
{%- elif hostname != objects.applier %}

kubernetes-master-apply-other-master:
  test.succeed_without_changes:
    - name: >-
        {{ hostname }} writes the objects; {{ objects.applier }} applies them
        (kubernetes:master:objects:applier, else the first of kubernetes:common:masters)
{%- else %}

{#- state.apply of this SLS alone does not sync custom modules (a highstate does): this
    state does, on a real run. A dry run (test=True) runs no state, so on a minion that
    never had the module it can only say so. #}
kubernetes-master-apply-state-module-synced:
  saltutil.sync_states:
    - reload_modules: true
{%- if opts.get('test') and not salt['sys.list_state_functions']('stacksalt_kubernetes') %}

kubernetes-master-objects-applied:
  test.show_notification:
    - name: {{ plan }}
    - text: >-
        dry run: the state module stacksalt_kubernetes is not synced to this minion yet, so a dry
        run cannot list the objects: run `saltutil.sync_states` (a real run or a highstate
        syncs it) and the dry run again
{%- else %}

kubernetes-master-objects-applied:
  stacksalt_kubernetes.applied:
    - name: {{ plan }}
    - state_file: {{ objects.state_file }}
    - wait_grace: {{ objects.wait_grace }}
    - field_manager: {{ objects.field_manager }}
    - event_tag: {{ objects.event_tag }}
    - api_timeout: {{ objects.api_timeout }}
    {#- `sls:` names the states written in that file (not its includes) #}
    - require:
      - saltutil: kubernetes-master-apply-state-module-synced
      - sls: kubernetes.master.objects
      - sls: kubernetes.master.kubeconfig
      - stacksalt_static_pod: kubernetes-master-kube-apiserver-manifest-managed
      - sls: kubernetes.pool.kubelet
{%- if binaries %}
      - sls: kubernetes.common.binaries
{%- endif %}
{%- if calico_node %}
      - sls: calico.node.certificates
      - sls: calico.node.calicoctl
{%- endif %}
{%- if etcd_member %}
      - cmd: etcd-server-cluster-healthy-with-quorum
{%- endif %}
{%- endif %}
{%- endif %}
{%- endif %}
