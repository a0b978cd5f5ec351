{#- Swap off on a node that runs a kubelet (failSwapOn: the kubelet exits where swap is
    on), as kubespray's preinstall does: turned off now (only while some is active), kept
    off at every boot: the fstab's swap entries commented out (a .bak copy when one is),
    swap.target masked (what pulls in the units systemd generates from the fstab and the
    GPT) and every .swap unit masked. Each state changes nothing on a second run.
    Included by kubernetes.pool.kubelet, whose service requires these states. Where
    kubernetes:common:swap:disabled is false, swap is left alone and the kubelet's
    configuration tolerates it (stacksalt_objects.kubelet_swap). #}
{%- from "kubernetes/map.jinja" import common with context %}
{%- set swap = common.swap %}
{#- an active (not commented) fstab line whose type is swap #}
{%- set fstab_swap = '^([ \\t]*[^#\\s]\\S*[ \\t]+\\S+[ \\t]+swap(?:[ \\t].*)?)$' %}
{%- set swap_units = "systemctl list-unit-files --type=swap --no-legend | awk '$2 != \"masked\" {print $1}'" %}
{%- if swap.disabled %}

kubernetes-common-swap-turned-off:
  cmd.run:
    - name: swapoff -a
    - onlyif: test -n "$(swapon --show=NAME --noheadings)"

kubernetes-common-swap-fstab-entries-commented:
  file.replace:
    - name: {{ swap.fstab }}
    - pattern: {{ fstab_swap | json }}
    - repl: {{ '# \\1' | json }}
    - ignore_if_missing: true
    - require:
      - cmd: kubernetes-common-swap-turned-off

kubernetes-common-swap-target-masked:
  service.masked:
    - name: swap.target

kubernetes-common-swap-units-masked:
  cmd.run:
    - name: {{ (swap_units ~ ' | xargs -r systemctl mask --') | json }}
    - onlyif: {{ (swap_units ~ ' | grep -q .') | json }}
    - require:
      - cmd: kubernetes-common-swap-turned-off
{%- else %}

kubernetes-common-swap-left-on:
  test.succeed_without_changes:
    - name: >-
        kubernetes:common:swap:disabled is false: swap is left as it is, the kubelet
        tolerates it (failSwapOn false, memorySwap {{ swap.behavior }})
{%- endif %}
