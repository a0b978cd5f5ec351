{#- Admin users. A password is never in the model: `password_secret` names an entry of
    the deployment's gpg-encrypted `secrets` pillar (pillar/secrets/<deployment>.sls). #}
{%- from "linux/map.jinja" import system with context %}
{%- set secrets = salt['pillar.get']('secrets', {}) %}
{%- set sudo_users = [] %}
{%- for name, user in system.user | dictsort if user.get('enabled', true) %}
{%- if user.get('password_secret') and user.password_secret not in secrets %}
{%- set msg = "linux:system:user:" ~ name ~ ":password_secret names secret '" ~ user.password_secret
      ~ "', which is not in the secrets pillar of this minion (pillar/secrets/); add it, or run"
      ~ " `stacksalt secrets generate` for a test deployment" %}
{{ raise(msg) }}
{%- endif %}
linux-system-user-{{ name }}-present:
  user.present:
    - name: {{ name }}
    - fullname: {{ user.get('full_name', name) }}
    - home: {{ user.get('home', '/home/' ~ name) }}
    - shell: {{ user.get('shell', '/bin/bash') }}
    - createhome: true
{%- if user.get('password_secret') %}
    - password: {{ secrets[user.password_secret] | json }}
{%- endif %}
{%- if user.get('sudo') %}
{%- do sudo_users.append(name) %}

linux-system-user-{{ name }}-sudoers-managed:
  file.managed:
    - name: {{ system.sudoers_dir }}/90-stacksalt-{{ name }}
    - contents: "{{ name }} ALL=(ALL:ALL) ALL"
    - mode: '0440'
    - check_cmd: /usr/sbin/visudo -c -f
    - require:
      - pkg: linux-system-user-sudo-package-installed
      - user: linux-system-user-{{ name }}-present
{%- endif %}
{%- endfor %}
{%- if sudo_users %}

linux-system-user-sudo-package-installed:
  pkg.installed:
    - name: {{ system.sudo_pkg }}
{%- endif %}
