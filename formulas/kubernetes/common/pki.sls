{#- The Kubernetes directories and the cluster CA certificate every node trusts. #}
{%- from "kubernetes/map.jinja" import common with context %}
{%- from "pki/macros.jinja" import ca_certificate with context %}
kubernetes-common-config-directory-managed:
  file.directory:
    - name: {{ common.config_dir }}
    - mode: '0755'

kubernetes-common-manifests-directory-managed:
  file.directory:
    - name: {{ common.manifests_dir }}
    - mode: '0755'
    - require:
      - file: kubernetes-common-config-directory-managed

kubernetes-common-pki-directory-managed:
  file.directory:
    - name: {{ common.pki_dir }}
    - mode: '0755'
    - require:
      - file: kubernetes-common-config-directory-managed

{#- client certificates embedded in the kubeconfigs #}
kubernetes-common-kubeconfig-pki-directory-managed:
  file.directory:
    - name: {{ common.pki_dir }}/kubeconfig
    - mode: '0700'
    - require:
      - file: kubernetes-common-pki-directory-managed

{{ ca_certificate('kubernetes-common', common.pki_dir ~ '/ca.crt', common.ssl,
    require=[{'file': 'kubernetes-common-pki-directory-managed'}]) }}
