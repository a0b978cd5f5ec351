{#- Debian's git (with git-shell), openssh-server and curl (the post-receive hook's client). #}
{%- from "git/map.jinja" import server with context %}
git-server-packages-installed:
  pkg.installed:
    - pkgs: {{ server.pkgs | json }}
