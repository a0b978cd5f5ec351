#!/usr/bin/python3
"""A recording stand-in for the kubelet (tests only: no kubelet can be had here), run by
the systemd unit kubernetes.pool.kubelet writes. Before it "runs" it checks what the real
kubelet checks at start and what can be observed here, and refuses (exit 1, the kubelet's
own message where it has one) otherwise:

  - --config is a readable KubeletConfiguration (kubelet.config.k8s.io/v1beta1);
  - failSwapOn (default true) against /proc/swaps ($KUBELET_RECORDER_SWAPS): with an
    active swap the real kubelet fails with "running with swap on is not supported,
    please disable swap! or set --fail-swap-on flag to false";
  - --kubeconfig and the configuration's staticPodPath exist.

Each start appends {argv, config, start, pid, result} to <dir>/kubelet.jsonl
($KUBELET_RECORDER_DIR, default /var/lib/kubelet-recorder); then it sleeps forever, so the
unit is active. $KUBELET_RECORDER_ONCE=1 exits 0 after the checks (tests).
"""

import json
import os
import sys
import time

try:
    import yaml
except ImportError:  # the test installs it with an interpreter that has PyYAML
    yaml = None

DIR = os.environ.get("KUBELET_RECORDER_DIR", "/var/lib/kubelet-recorder")
SWAPS = os.environ.get("KUBELET_RECORDER_SWAPS", "/proc/swaps")
API_VERSION, KIND = "kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"


def flag(argv, name):
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def active_swaps():
    """The lines of /proc/swaps after its header."""
    try:
        with open(SWAPS, encoding="utf-8") as fh:
            return [line.strip() for line in fh.read().splitlines()[1:] if line.strip()]
    except FileNotFoundError:
        return []


def check(argv):
    """(config, None) if the kubelet could start, else (config or None, why)."""
    path = flag(argv, "config")
    if not path:
        return None, "--config is not given"
    try:
        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except OSError as exc:
        return None, f"failed to load kubelet config file, path: {path}: {exc}"
    except yaml.YAMLError as exc:
        return None, f"failed to load kubelet config file, path: {path}: {exc}"
    if not isinstance(config, dict) or (config.get("apiVersion"), config.get("kind")) != (
            API_VERSION, KIND):
        got = (config or {}).get("apiVersion"), (config or {}).get("kind") if isinstance(
            config, dict) else (None, None)
        return None, f"{path}: not a {KIND} {API_VERSION} (apiVersion, kind: {got})"
    fail_swap_on = config.get("failSwapOn", True)
    if not isinstance(fail_swap_on, bool):
        return config, f"{path}: failSwapOn is {fail_swap_on!r}, not a boolean"
    swaps = active_swaps()
    if fail_swap_on and swaps:
        return config, ("failed to run Kubelet: running with swap on is not supported, "
                        "please disable swap! or set --fail-swap-on flag to false. "
                        f"/proc/swaps contained: {swaps}")
    kubeconfig = flag(argv, "kubeconfig")
    if not kubeconfig or not os.path.isfile(kubeconfig):
        return config, f"--kubeconfig {kubeconfig!r} does not exist"
    static = config.get("staticPodPath")
    if not static or not os.path.isdir(static):
        return config, f"{path}: staticPodPath {static!r} is not a directory"
    return config, None


def main() -> int:
    argv = sys.argv[1:]
    config, why = check(argv)
    os.makedirs(DIR, exist_ok=True)
    with open(os.path.join(DIR, "kubelet.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"argv": argv, "config": config, "start": time.time(),
                             "pid": os.getpid(), "result": why or "running"}) + "\n")
    if why:
        print(f"E kubelet: {why}", file=sys.stderr)
        return 1
    if os.environ.get("KUBELET_RECORDER_ONCE") == "1":
        return 0
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
