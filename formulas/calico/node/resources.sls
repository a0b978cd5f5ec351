{#- Calico resources on the Kubernetes masters, one per file under resources_dir.
    calicoctl applies them (to etcd directly, no Kubernetes API needed) only where binaries
    are installed, from one master (map.jinja: is_resource_applier). A resource is applied
    again whenever its file differs from the copy kept after its last successful apply, so
    a failed apply is retried by the next run and an unchanged model changes nothing.
    Route reflectors are Node resources that calico-node creates: Salt merges its settings
    into them (calicoctl patch + label) once they exist, never replaces them. #}
{%- from "calico/map.jinja" import node, is_master, is_resource_applier with context %}
{%- if is_master %}
{%- from "calico/node/resources.jinja" import resources, patches with context %}
{%- set ctl = node.calicoctl %}
{%- set calicoctl = ctl.bin_dir ~ '/calicoctl' %}
{%- set apply = ctl.install and is_resource_applier %}
{%- if apply %}
include:
  - calico.node.certificates
  - calico.node.calicoctl
{%- endif %}

calico-node-resources-directory-managed:
  file.directory:
    - name: {{ node.resources_dir }}
    - mode: '0755'
    - makedirs: true
{%- for obj in resources + patches %}
{%- set file = obj.kind | lower ~ '-' ~ obj.metadata.name %}
{%- set path = node.resources_dir ~ '/' ~ file ~ '.yaml' %}
{%- set stamp = node.applied_dir ~ '/' ~ file ~ '.yaml' %}

calico-node-resource-{{ file }}-managed:
  file.serialize:
    - name: {{ path }}
    - serializer: yaml
    - dataset: {{ obj | json }}
    - mode: '0644'
    - require:
      - file: calico-node-resources-directory-managed
{%- if apply %}
{%- if obj.kind == 'Node' %}
{%- set label = obj.metadata.labels | dictsort | first %}

calico-node-resource-{{ file }}-patched:
  cmd.run:
    - name: >-
        {{ calicoctl }} patch node {{ obj.metadata.name }} --patch '{{ {'spec': obj.spec} | json }}'
        && {{ calicoctl }} label nodes {{ obj.metadata.name }} {{ label[0] }}={{ label[1] }} --overwrite
        && install -D -m 0644 {{ path }} {{ stamp }}
    - onlyif: {{ calicoctl }} get node {{ obj.metadata.name }}
    - unless: cmp -s {{ path }} {{ stamp }}
    - require:
      - file: calico-node-resource-{{ file }}-managed
      - file: calico-node-calicoctl-binary-installed
      - file: calico-node-calicoctl-config-managed
      - sls: calico.node.certificates
{%- else %}

calico-node-resource-{{ file }}-applied:
  cmd.run:
    - name: {{ calicoctl }} apply -f {{ path }} && install -D -m 0644 {{ path }} {{ stamp }}
    - unless: cmp -s {{ path }} {{ stamp }}
    - require:
      - file: calico-node-resource-{{ file }}-managed
      - file: calico-node-calicoctl-binary-installed
      - file: calico-node-calicoctl-config-managed
      - sls: calico.node.certificates
{%- endif %}
{%- endif %}
{%- endfor %}
{%- endif %}
