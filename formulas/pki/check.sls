{#- The local "certificate is current" check (files/certificate-current.sh). Every
    certificate state of pki/macros.jinja requires this state and runs the script as its
    `unless`, so a current certificate costs no round trip to the CA minion. #}
{%- from "pki/map.jinja" import check with context %}
pki-certificate-check-script-managed:
  file.managed:
    - name: {{ check.script }}
    - source: salt://pki/files/certificate-current.sh
    - user: root
    - group: root
    - mode: '0755'
