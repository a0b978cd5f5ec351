{#- Calico's Kubernetes objects, one object per file, on the Kubernetes masters only. #}
{%- from "calico/map.jinja" import node, is_master with context %}
{%- if is_master %}
{%- from "calico/node/manifests.jinja" import objects with context %}
calico-node-addons-directory-managed:
  file.directory:
    - name: {{ node.addons_dir }}
    - mode: '0755'
    - makedirs: true
{%- for obj in objects %}
{%- set file = obj.kind | lower ~ '-' ~ obj.metadata.name %}

calico-node-addon-{{ file }}-managed:
  file.serialize:
    - name: {{ node.addons_dir }}/{{ file }}.yaml
    - serializer: yaml
    - dataset: {{ obj | json }}
    - mode: '0644'
    - require:
      - file: calico-node-addons-directory-managed
{%- endfor %}
{%- endif %}
