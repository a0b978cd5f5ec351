{#- Cluster addons as objects under addons/<addon>/<kind>-<name>.yaml (one object per
    file); applied with kubectl only where the binaries are installed and the API runs. #}
{%- from "kubernetes/map.jinja" import common, master, k8s with context %}
{%- set addons_dir = master.addons.dir %}
{%- set addons = [] %}
{%- set kubectl = common.binaries.bin_dir ~ '/kubectl --kubeconfig ' ~ common.config_dir ~ '/admin.conf' %}
{%- if master.addons.coredns.enabled %}{% do addons.append('coredns') %}{% endif %}
include:
  - kubernetes.common.pki
{%- if common.binaries.install %}
  - kubernetes.common.binaries
  - kubernetes.master.kubeconfig
{%- endif %}
{%- for addon in addons %}
{%- import_yaml "kubernetes/files/objects/" ~ addon ~ ".yaml" as objects with context %}

kubernetes-master-addon-{{ addon }}-directory-managed:
  file.directory:
    - name: {{ addons_dir }}/{{ addon }}
    - mode: '0755'
    - makedirs: true
    - require:
      - file: kubernetes-common-config-directory-managed
{%- for obj in objects %}
{%- set file = obj.kind | lower ~ '-' ~ obj.metadata.name | replace(':', '-') %}

kubernetes-master-addon-{{ addon }}-{{ file }}-managed:
  file.serialize:
    - name: {{ addons_dir }}/{{ addon }}/{{ file }}.yaml
    - serializer: yaml
    - dataset: {{ obj | json }}
    - mode: '0644'
    - require:
      - file: kubernetes-master-addon-{{ addon }}-directory-managed
{%- endfor %}
{%- if common.binaries.install %}

kubernetes-master-addon-{{ addon }}-applied:
  cmd.run:
    - name: {{ kubectl }} apply -f {{ addons_dir }}/{{ addon }}/
    {#- kubectl diff exits 0 when the cluster has every object as written #}
    - unless: {{ kubectl }} diff -f {{ addons_dir }}/{{ addon }}/
    - require:
      - file: kubernetes-common-kubectl-binary-managed
{%- for obj in objects %}
      - file: kubernetes-master-addon-{{ addon }}-{{ obj.kind | lower ~ '-' ~ obj.metadata.name | replace(':', '-') }}-managed
{%- endfor %}
      - file: kubernetes-master-admin-kubeconfig-managed
{%- endif %}
{%- endfor %}
