{#- salt-api and CherryPy beside the master. Where Salt comes from a distribution, the model
    lists its packages (salt:api:pkgs); where Salt is installed from PyPI (the lab's image),
    CherryPy comes with it and the image ships salt-api's unit. Either way, nothing starts
    until salt-api reports CherryPy: else rest_cherrypy would not load, silently. #}
{%- from "salt/map.jinja" import api with context %}
{%- if api.pkgs %}
salt-api-packages-installed:
  pkg.installed:
    - pkgs: {{ api.pkgs | json }}
{%- endif %}

salt-api-cherrypy-installed-checked:
  test.fail_without_changes:
    - comment: {{ (api.bin ~ ' --versions-report shows no CherryPy: install salt-api and CherryPy '
                   ~ 'beside salt-master (salt:api:pkgs, or CherryPy in the venv Salt runs from)') | json }}
    - unless: {{ (api.bin ~ " --versions-report | grep -Eiq '^ *cherrypy: [0-9]'") | json }}
{%- if api.pkgs %}
    - require:
      - pkg: salt-api-packages-installed
{%- endif %}
