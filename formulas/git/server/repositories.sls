{#- One bare repository per git:server:repositories entry, owned by the push account, and
    its post-receive hook: a push to the hook's branch queues a build in Buildbot (the
    change hook), and the pusher sees the build's address. #}
{%- from "git/map.jinja" import server with context %}
{%- set secrets = salt['pillar.get']('secrets', {}) %}
{%- for repo in server.repositories %}
{%- set path = server.home ~ '/' ~ repo.name ~ '.git' %}
{%- set auth = repo.get('hook', {}).get('auth') %}
{%- set netrc = path ~ '/buildbot.netrc' if auth else '' %}
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
        netrc: {{ netrc | json }}
    - require:
      - git: git-server-repository-{{ repo.name }}-present
{%- endif %}
{%- if auth %}
{%- if auth.password_secret not in secrets %}
{{ raise("git:server:repositories: " ~ repo.name ~ ": hook:auth:password_secret names secret '"
    ~ auth.password_secret ~ "', which is not in the secrets pillar of this minion "
    ~ "(pillar/secrets/); add it, or run `stacksalt secrets generate` for a test deployment") }}
{%- endif %}
{%- set host = repo.hook.buildbot_url.split('://')[1].split('/')[0].rsplit(':', 1)[0] %}

{#- the change hook's account (Buildbot's change_hook_auth), for curl only: never on its
    command line, never in the state's output #}
git-server-repository-{{ repo.name }}-buildbot-netrc-managed:
  file.managed:
    - name: {{ netrc }}
    - user: {{ server.user }}
    - group: {{ server.group }}
    - mode: '0600'
    - show_changes: false
    - contents: {{ ('machine ' ~ host ~ ' login ' ~ auth.user ~ ' password '
        ~ (secrets[auth.password_secret] | string | trim)) | json }}
    - require:
      - git: git-server-repository-{{ repo.name }}-present
    - require_in:
      - file: git-server-repository-{{ repo.name }}-post-receive-hook-managed
{%- endif %}
{%- endfor %}
