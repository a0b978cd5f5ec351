{%- from "linux/map.jinja" import network with context %}
linux-network-hosts-file-managed:
  file.managed:
    - name: /etc/hosts
    - source: salt://linux/files/hosts.jinja
    - template: jinja
    - mode: '0644'
    - context:
        hosts: {{ network.host | json }}
