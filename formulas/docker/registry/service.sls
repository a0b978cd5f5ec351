{#- The registry's systemd unit (from the package), restarted when its configuration, its
    certificate or its password file changes (it reads them at start). #}
{%- from "docker/map.jinja" import registry with context %}
docker-registry-service-running:
  service.running:
    - name: {{ registry.service }}
    - enable: true
    - require:
      - file: docker-registry-storage-directory-managed
      - x509: docker-registry-private-key-managed
    - watch:
      - file: docker-registry-config-file-managed
      - x509: docker-registry-certificate-managed
      - cmd: docker-registry-htpasswd-user-managed
      - file: docker-registry-htpasswd-file-permissions-managed
