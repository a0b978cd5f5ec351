{#- sshd for the push account: public keys only (a Match block in a drop-in, which
    Debian's sshd_config includes). The drop-in is checked on its own before it is put in
    place (check_cmd appends the new file's path), the whole configuration with `sshd -t`
    before sshd reloads it. #}
{%- from "git/map.jinja" import server with context %}
git-server-sshd-config-file-managed:
  file.managed:
    - name: {{ server.ssh.config_file }}
    - source: salt://git/files/sshd-git-server.conf.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: true
    - check_cmd: {{ server.ssh.sshd }} -t -f
    - context:
        user: {{ server.user }}
    - require:
      - pkg: git-server-packages-installed

git-server-sshd-config-checked:
  cmd.run:
    - name: {{ server.ssh.sshd }} -t
    - onchanges:
      - file: git-server-sshd-config-file-managed

git-server-sshd-service-running:
  service.running:
    - name: {{ server.ssh.service }}
    - enable: true
    - reload: true
    - require:
      - cmd: git-server-sshd-config-checked
    - watch:
      - file: git-server-sshd-config-file-managed
