{#- The push account: a system user whose only shell is git-shell (no login, no
    password), and the admins' public keys, each limited to git (no forwarding, no pty). #}
{%- from "git/map.jinja" import server with context %}
{%- if not server.admin_keys %}
{{ raise("git:server:admin_keys is empty in the model: nobody could push (set "
    ~ "${_param:git_server_admin_keys} for reclass/classes/service/git/server/init.yml)") }}
{%- endif %}
git-server-group-present:
  group.present:
    - name: {{ server.group }}
    - system: true

git-server-user-present:
  user.present:
    - name: {{ server.user }}
    - gid: {{ server.group }}
    - home: {{ server.home }}
    - createhome: true
    - shell: {{ server.shell }}
    - system: true
    - password: '*'
    - require:
      - pkg: git-server-packages-installed
      - group: git-server-group-present

git-server-ssh-directory-managed:
  file.directory:
    - name: {{ server.home }}/.ssh
    - user: {{ server.user }}
    - group: {{ server.group }}
    - mode: '0700'
    - require:
      - user: git-server-user-present

git-server-authorized-keys-managed:
  file.managed:
    - name: {{ server.home }}/.ssh/authorized_keys
    - source: salt://git/files/authorized_keys.jinja
    - template: jinja
    - user: {{ server.user }}
    - group: {{ server.group }}
    - mode: '0600'
    - context:
        keys: {{ server.admin_keys | json }}
        options: {{ server.key_options | json }}
    - require:
      - file: git-server-ssh-directory-managed
