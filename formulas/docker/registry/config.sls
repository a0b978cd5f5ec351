{#- /etc/docker/registry/config.yml: filesystem storage, HTTPS only (the certificate from
    docker.registry.certificates), htpasswd authentication. #}
{%- from "docker/map.jinja" import registry with context %}
docker-registry-config-file-managed:
  file.managed:
    - name: {{ registry.config_file }}
    - source: salt://docker/files/registry-config.yml.jinja
    - template: jinja
    - user: root
    - group: {{ registry.system_group }}
    - mode: '0640'
    - context:
        storage: {{ registry.storage }}
        addr: {{ registry.bind.address }}:{{ registry.bind.port }}
        host: https://{{ registry.hostname }}:{{ registry.bind.port }}
        certificate: {{ registry.ssl.pki_dir }}/registry.crt
        key: {{ registry.ssl.pki_dir }}/registry.key
        realm: {{ registry.auth.realm | json }}
        htpasswd_file: {{ registry.auth.htpasswd_file }}
    - require:
      - pkg: docker-registry-packages-installed
