{#- Renders the server configuration and the init SQL (databases, users with ${NAME}
    password placeholders, grants). Run by the image's render stage; the final stage
    copies both files into /etc/stacksalt/templates. #}
{%- from "mariadb/map.jinja" import server with context %}
{%- if server.enabled %}
{#- one user may own several databases (nova: nova, nova_api, nova_cell0); it must have
    one password everywhere #}
{%- set users = {} %}
{%- for db, spec in server.database | dictsort %}
{%-   set user = spec.get('user', db) %}
{%-   set env = spec.get('password_env', '') %}
{%-   if not env %}
{%-     set msg = 'pillar mariadb:server:database:' ~ db ~ ':password_env is missing: '
              ~ 'name the environment variable that holds the password of user ' ~ user %}
{%-     do salt['test.exception'](msg) %}
{%-   endif %}
{%-   if user in users and users[user].password_env != env %}
{%-     set msg = 'pillar mariadb:server:database:' ~ db ~ ': user ' ~ user ~ ' has password_env '
              ~ env ~ ' here but ' ~ users[user].password_env ~ ' for another database; '
              ~ 'one user has one password' %}
{%-     do salt['test.exception'](msg) %}
{%-   endif %}
{%-   do users.setdefault(user, {'password_env': env, 'host': spec.get('host', server.user_host), 'databases': []}) %}
{%-   do users[user].databases.append(db) %}
{%- endfor %}

mariadb-server-config-file-managed:
  file.managed:
    - name: {{ server.config_file }}
    - source: salt://mariadb/files/stacksalt.cnf.jinja
    - template: jinja
    - makedirs: true
    - mode: '0644'
    - context:
        server: {{ server | json }}

mariadb-server-init-sql-managed:
  file.managed:
    - name: {{ server.init_file }}
    - source: salt://mariadb/files/init.sql.jinja
    - template: jinja
    - makedirs: true
    - mode: '0640'
    - context:
        server: {{ server | json }}
        users: {{ users | json }}
{%- endif %}
