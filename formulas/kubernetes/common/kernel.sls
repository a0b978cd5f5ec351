{#- Kernel modules Kubernetes and containerd need: persisted for boot, loaded now unless
    the kernel provides them already (a module built into the kernel is not always under
    /sys/module; a container sees its host's kernel and cannot load modules). The sysctls
    are the linux formula's (linux:system:kernel:sysctl in the model). #}
{%- from "kubernetes/map.jinja" import common with context %}
{#- the net.bridge.* keys exist only once br_netfilter is loaded: load before applying #}
{%- set sysctl = salt['pillar.get']('linux:system:kernel:sysctl', {}) %}
{%- if sysctl %}
include:
  - linux.system.sysctl
{%- endif %}

kubernetes-common-kernel-modules-file-managed:
  file.managed:
    - name: {{ common.kernel.modules_file }}
    - mode: '0644'
    - contents: |
        # Managed by Salt (kubernetes.common.kernel).
        {%- for module in common.kernel.modules | sort %}
        {{ module }}
        {%- endfor %}
{%- for module, present in common.kernel.modules | dictsort %}

kubernetes-common-kernel-module-{{ module }}-loaded:
  cmd.run:
    - name: modprobe {{ module }}
    - unless: {{ present | json }}
{%- if sysctl %}
    - require_in:
      - cmd: linux-system-sysctl-applied
{%- endif %}
{%- endfor %}
