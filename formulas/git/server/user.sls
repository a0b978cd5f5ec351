{#- The push account: a system user whose only shell is git-shell (no login, no
    password), and the admins' public keys, each limited to git (no forwarding, no pty):
    git:server:admin_keys, then the lines of the secret git:server:admin_keys_secret names
    (a key made per machine, e.g. the lab's; a public key, so its changes may be shown). #}
{%- from "git/map.jinja" import server with context %}
{%- set secrets = salt['pillar.get']('secrets', {}) %}
{%- set keys = server.admin_keys | list %}
{%- if server.admin_keys_secret %}
{%- if server.admin_keys_secret not in secrets %}
{{ raise("git:server:admin_keys_secret names secret '" ~ server.admin_keys_secret
    ~ "', which is not in the secrets pillar of this minion (pillar/secrets/); add it, "
    ~ "or run `stacksalt secrets generate` for a test deployment") }}
{%- endif %}
{%- for line in (secrets[server.admin_keys_secret] | string).splitlines() %}
{%- if line | trim %}
{%- do keys.append(line | trim) %}
{%- endif %}
{%- endfor %}
{%- endif %}
{%- if not keys %}
{{ raise("git:server:admin_keys is empty in the model and git:server:admin_keys_secret "
    ~ "is not set: nobody could push (set ${_param:git_server_admin_keys} for "
    ~ "reclass/classes/service/git/server/init.yml, or git:server:admin_keys_secret)") }}
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
        keys: {{ keys | json }}
        options: {{ server.key_options | json }}
    - require:
      - file: git-server-ssh-directory-managed
