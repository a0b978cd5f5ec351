{%- from "etcd/map.jinja" import server with context %}
etcd-server-packages-installed:
  pkg.installed:
    - pkgs: {{ server.pkgs | json }}
