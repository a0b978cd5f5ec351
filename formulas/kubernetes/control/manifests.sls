{#- The OpenStack service-roles as Kubernetes objects, one object per file under
    manifest_dir (layout and the apply plan: kubernetes/control/README.md). The Secret is
    the only file with secret values: 0600 in a 0700 directory, and its state shows no
    diff. Files no longer rendered (a disabled role, an earlier release's Jobs) are
    removed. #}
{%- from "kubernetes/control/map.jinja" import control with context %}
{%- from "kubernetes/control/objects.jinja" import files, plan with context %}
{%- set top = control.manifest_dir %}
{%- set dirs = files | map(attribute='dir') | unique | sort %}

kubernetes-control-manifest-directory-managed:
  file.directory:
    - name: {{ top }}
    - mode: '0755'
    - makedirs: true
{%- for dir in dirs %}

kubernetes-control-{{ dir }}-directory-managed:
  file.directory:
    - name: {{ top }}/{{ dir }}
    - mode: '{{ '0700' if dir == '00-secret' else '0755' }}'
    - require:
      - file: kubernetes-control-manifest-directory-managed
{%- endfor %}
{%- for f in files %}

kubernetes-control-{{ f.file | replace('/', '-') | replace('.yaml', '') }}-managed:
  file.serialize:
    - name: {{ top }}/{{ f.file }}
    - serializer: yaml
    - dataset: {{ f.object | json }}
{%- if f.secret %}
    - mode: '0600'
    - show_changes: false
{%- else %}
    - mode: '0644'
{%- endif %}
    - require:
      - file: kubernetes-control-{{ f.dir }}-directory-managed
{%- endfor %}

kubernetes-control-apply-plan-managed:
  file.serialize:
    - name: {{ top }}/apply-plan.yaml
    - serializer: yaml
    - dataset: {{ plan | json }}
    - mode: '0644'
    - require:
      - file: kubernetes-control-manifest-directory-managed

kubernetes-control-stale-manifests-removed:
  file.directory:
    - name: {{ top }}
    - clean: true
    {#- only the files: a required directory would keep everything under it #}
    - require:
      - file: kubernetes-control-apply-plan-managed
{%- for f in files %}
      - file: kubernetes-control-{{ f.file | replace('/', '-') | replace('.yaml', '') }}-managed
{%- endfor %}
