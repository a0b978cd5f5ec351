{#- The cluster's objects, one per file under kubernetes:master:objects:dir, and their one
    apply plan (apply-plan.yaml), as the stacksalt_objects module builds them from this
    master's pillar: Calico (calico:node), CoreDNS (kubernetes:master:addons), the
    OpenStack service-roles (kubernetes:control). Layout and plan: README.md of this role.
    A file with secret values (the OpenStack Secret) is 0600 in a 0700 directory and its
    state shows no diff. Files no longer built (a disabled role, an earlier release's Jobs)
    are removed. Nothing here talks to an API: kubernetes.master.apply does. #}
{%- if 'stacksalt_objects.objects' not in salt %}
{{ raise("the execution module stacksalt_objects (formulas/_modules) is not on this minion: "
    ~ "run saltutil.sync_modules (a highstate syncs it)") }}
{%- endif %}
{%- set built = salt['stacksalt_objects.objects']() %}
{%- set top = built.dir %}
{%- macro id(path) %}kubernetes-master-object-{{ path | replace('/', '-') | replace('.yaml', '') }}-managed{% endmacro %}
{%- if not built.files %}

kubernetes-master-objects-none-built:
  test.succeed_without_changes:
    - name: no Kubernetes or Calico object to write on this minion
{%- else %}

kubernetes-master-objects-directory-managed:
  file.directory:
    - name: {{ top }}
    - mode: '0755'
    - makedirs: true
{%- for dir, mode in built.dirs.items() %}

kubernetes-master-objects-{{ dir | replace('/', '-') }}-directory-managed:
  file.directory:
    - name: {{ top }}/{{ dir }}
    - mode: '{{ mode }}'
    - require:
      - file: kubernetes-master-objects-directory-managed
{%- endfor %}
{%- for f in built.files %}

{{ id(f.file) }}:
  file.serialize:
    - name: {{ top }}/{{ f.file }}
    - serializer: yaml
    - dataset: {{ f.object | json }}
    - mode: '{{ f.mode }}'
{%- if f.secret %}
    - show_changes: false
{%- endif %}
    - require:
      - file: kubernetes-master-objects-{{ f.file.rsplit('/', 1)[0] | replace('/', '-') }}-directory-managed
{%- endfor %}

kubernetes-master-objects-apply-plan-managed:
  file.serialize:
    - name: {{ top }}/{{ built.plan_file }}
    - serializer: yaml
    - dataset: {{ built.plan | json }}
    - mode: '0644'
    - require:
      - file: kubernetes-master-objects-directory-managed

kubernetes-master-objects-stale-files-removed:
  file.directory:
    - name: {{ top }}
    - clean: true
    {#- only the files: a required directory would keep everything under it #}
    - require:
      - file: kubernetes-master-objects-apply-plan-managed
{%- for f in built.files %}
      - file: {{ id(f.file) }}
{%- endfor %}
{%- endif %}
