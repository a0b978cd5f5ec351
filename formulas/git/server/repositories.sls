{#- One bare repository per git:server:repositories entry, owned by the push account, and
    its post-receive hook: a push to the hook's branch queues a build in Buildbot (the
    change hook), and the pusher sees the build's address. #}
{%- from "git/map.jinja" import server with context %}
{%- for repo in server.repositories %}
{%- set path = server.home ~ '/' ~ repo.name ~ '.git' %}
git-server-repository-{{ repo.name }}-present:
  git.present:
    - name: {{ path }}
    - bare: true
    - user: {{ server.user }}
    - require:
      - user: git-server-user-present
{%- if repo.get('hook') %}

git-server-repository-{{ repo.name }}-post-receive-hook-managed:
  file.managed:
    - name: {{ path }}/hooks/post-receive
    - source: salt://git/files/post-receive.jinja
    - template: jinja
    - user: {{ server.user }}
    - group: {{ server.group }}
    - mode: '0755'
    - context:
        buildbot_url: {{ repo.hook.buildbot_url | json }}
        branch: {{ repo.hook.branch | json }}
        repository: {{ repo.hook.repository | json }}
        builder: {{ repo.hook.get("builder", repo.name) | json }}
        curl_timeout: {{ server.hook.curl_timeout }}
    - require:
      - git: git-server-repository-{{ repo.name }}-present
{%- endif %}
{%- endfor %}
