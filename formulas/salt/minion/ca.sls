{#- Certificate authorities on this minion. Their keys never leave it: other minions get
    certificates through the master (x509.sign_remote_certificate) under the signing
    policies in this minion's pillar (x509_signing_policies). The CA certificates are
    published in the salt mine as `stacksalt_ca_certs` (see the model's mine_functions). #}
{%- from "salt/map.jinja" import minion with context %}
{%- set ca_states = [] %}
{%- for name, ca in minion.ca.authority | dictsort %}
{%- set dir = minion.ca.base_dir ~ '/' ~ name %}
salt-minion-ca-{{ name }}-directory-managed:
  file.directory:
    - name: {{ dir }}
    - mode: '0700'
    - makedirs: true

salt-minion-ca-{{ name }}-private-key-managed:
  x509.private_key_managed:
    - name: {{ dir }}/ca.key
    - algo: rsa
    - keysize: {{ ca.get('key_size', minion.ca.key_size) }}
    - mode: '0600'
    {#- the state compiles the whole pillar again (x509_v2 runs an inner state); skip it
        when the key is there as wanted (root, 0600, RSA of key_size bits) #}
    - unless: >-
        test "$(stat -c '%a %u %g' {{ dir }}/ca.key)" = "600 0 0" &&
        openssl pkey -in {{ dir }}/ca.key -noout -text | head -n 1 |
        grep -qF "({{ ca.get('key_size', minion.ca.key_size) }} bit"
    - require:
      - file: salt-minion-ca-{{ name }}-directory-managed

salt-minion-ca-{{ name }}-certificate-managed:
  x509.certificate_managed:
    - name: {{ dir }}/ca.crt
    - signing_private_key: {{ dir }}/ca.key
    - CN: {{ ca.common_name | json }}
    - O: {{ ca.get('organization', name) | json }}
    - basicConstraints: "critical, CA:true"
    - keyUsage: "critical, cRLSign, keyCertSign"
    - subjectKeyIdentifier: hash
    - authorityKeyIdentifier: keyid:always
    - days_valid: {{ ca.get('days_valid', 3650) }}
    - days_remaining: {{ ca.get('days_remaining', 90) }}
    - mode: '0644'
    {#- skip the inner state while the CA certificate is current: valid for more than
        days_remaining days, made from ca.key, self-signed, with the model's CN and O #}
{%- set subject = 'CN=' ~ ca.common_name ~ ',O=' ~ ca.get('organization', name) %}
    - unless: >-
        test -s {{ dir }}/ca.crt &&
        openssl x509 -in {{ dir }}/ca.crt -noout -checkend {{ ca.get('days_remaining', 90) * 86400 }} &&
        test "$(openssl x509 -in {{ dir }}/ca.crt -noout -pubkey)" = "$(openssl pkey -in {{ dir }}/ca.key -pubout)" &&
        openssl verify -CAfile {{ dir }}/ca.crt {{ dir }}/ca.crt &&
        test "$(openssl x509 -in {{ dir }}/ca.crt -noout -subject -nameopt RFC2253)" = {{ ('subject=' ~ subject) | quote }}
    - require:
      - x509: salt-minion-ca-{{ name }}-private-key-managed
{%- do ca_states.append('salt-minion-ca-' ~ name ~ '-certificate-managed') %}
{%- endfor %}
{%- if ca_states %}

salt-minion-ca-certificates-published-to-mine:
  module.run:
    - mine.update: []
    - onchanges:
{%- for id in ca_states %}
      - x509: {{ id }}
{%- endfor %}
{%- endif %}
{%- set policies = salt['pillar.get']('x509_signing_policies', {}) %}
{%- if ca_states and policies %}

{#- The signing side reads the policies from the minion's in-memory pillar, which a state
    run does not refresh: a policy the model adds (a new node, a new certificate) would be
    "not defined" until the minion restarts. A record of the policies as this run compiled
    them; when it changes, the in-memory pillar is refreshed before any node asks. #}
salt-minion-ca-signing-policies-recorded:
  file.serialize:
    - name: {{ minion.ca.base_dir }}/signing-policies.json
    - serializer: json
    - dataset: {{ policies | json }}
    - mode: '0600'
    - require:
{%- for id in ca_states %}
      - x509: {{ id }}
{%- endfor %}

salt-minion-ca-signing-policies-loaded:
  module.run:
    - saltutil.refresh_pillar:
      - wait: true
    - onchanges:
      - file: salt-minion-ca-signing-policies-recorded
{%- endif %}
