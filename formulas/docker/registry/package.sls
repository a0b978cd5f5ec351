{#- Debian's docker-registry (distribution 2.8) and htpasswd for its bcrypt password file. #}
{%- from "docker/map.jinja" import registry with context %}
docker-registry-packages-installed:
  pkg.installed:
    - pkgs: {{ registry.pkgs | json }}

docker-registry-storage-directory-managed:
  file.directory:
    - name: {{ registry.storage }}
    - user: {{ registry.system_user }}
    - group: {{ registry.system_group }}
    - mode: '0750'
    - require:
      - pkg: docker-registry-packages-installed
