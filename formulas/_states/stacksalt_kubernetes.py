"""Apply the cluster's objects (Calico, CoreDNS, the OpenStack roles) in the order of their plan.

State `stacksalt_kubernetes.applied` reads the one apply plan that kubernetes.master.objects
writes (``<objects dir>/apply-plan.yaml``, built by the stacksalt_objects module: ordered
steps ``{name, tool, action, kind, object, namespace, file, wait}``, optional
``timeout``, ``await``, ``unless_exists``, ``credentials``; ``tools`` names the binaries
and kubeconfigs) and, step by step:

- runs kubectl with admin.conf (``tools.kubectl.kubeconfig``), except for a step with
  ``credentials: super-admin``: super-admin.conf (``tools.kubectl.super_admin_kubeconfig``,
  system:masters), allowed for a ClusterRoleBinding only: the binding that gives
  admin.conf's group its rights, which admin.conf cannot create itself;

- applies the object's file only if its sha256 differs from the one recorded after the
  step's last successful apply (``state_file``, JSON, mode 0600), so a render that changes
  nothing applies nothing;
- with the step's tool: ``kubectl apply --server-side`` (in the object's namespace), or
  ``calicoctl apply -f`` (Calico's datastore), or for ``action: patch`` (a Calico Node
  that calico-node creates) ``calicoctl patch`` of its spec and ``calicoctl label`` of its
  labels, never a replace;
- ``await: exists`` first polls until the object exists (calico-node registers its Node
  when it starts), up to the step's timeout: a failure, never a silent skip;
- waits: ``wait: rollout`` -> ``kubectl rollout status``, ``wait: complete`` -> ``kubectl
  wait --for=condition=complete`` (beside a wait for ``failed``: a failed Job fails the
  step at once), ``wait: none`` -> nothing;
- records the step's sha256 only when every phase succeeded, so a failed step is applied
  again by the next run;
- skips a step carrying ``unless_exists: <kind>/<name>`` when that object exists
  (``kubectl get``): a release's bootstrap Job (a full db_sync) runs on a first install
  only; an upgrade goes through the expand / migrate / contract Jobs;
- stops at the first failure (non-zero exit or timeout): later steps are not applied, the
  state fails and its comment names the object and what the tool said.

A downgrade is refused: the plan names the OpenStack release it rolls out (``release:
{name, series}``, from kubernetes:control:release and release_series) and the record
keeps the release of the last run that finished (or ran a contract Job). A plan of an
older series fails at once, nothing applied, unless the plan says ``allow_downgrade``
(kubernetes:control:allow_downgrade): the newer release's contract Jobs may have
dropped columns and tables the older code still reads.

After a real run it fires an event to the salt master (``event_tag``) with what changed,
how long each step and each wait took, the failed step, and what was skipped.

Secrets are applied from their file (``kubectl apply -f``): no value is ever on a command
line, and every value of every Secret in the plan is redacted from the tools' messages
before they reach the state's comment, changes or the event.

The functions above ``applied`` are pure (no Salt): the fast tests run them against the
recording kubectl and calicoctl of tests/lab/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time

try:
    import yaml
except ImportError:  # pragma: no cover - Salt always ships PyYAML
    yaml = None

__virtualname__ = "stacksalt_kubernetes"

WAITS = ("rollout", "complete", "none")
TOOLS = ("kubectl", "calicoctl")
ACTIONS = ("apply", "patch")
SUPER_ADMIN = "super-admin"
STEP_KEYS = ("name", "tool", "action", "kind", "object", "file", "wait")
REDACTED = "<redacted>"
# What kubectl prints when its own --timeout runs out.
KUBECTL_TIMEOUT_MARKERS = ("timed out waiting for the condition", "context deadline exceeded")
# Seconds between two polls of an `await: exists`.
POLL = 2.0


def __virtual__():
    return __virtualname__


class PlanError(ValueError):
    """The plan file is not what kubernetes.master.objects writes."""


# --------------------------------------------------------------------------- plan


def load_plan(path: str) -> tuple[list[dict], dict]:
    """(steps, plan settings): the steps checked (a list of mappings with name, tool,
    action, kind, object, file and wait; names unique; file paths absolute or relative
    to the plan's directory), and {rollout_timeout, tools} of the plan."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise PlanError(
            f"{path}: no apply plan; apply kubernetes.master.objects first") from None
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise PlanError(f"{path}: expected a mapping with `steps` (a list), got "
                        f"{type(data).__name__}")
    release = data.get("release")
    if release is not None and not (
            isinstance(release, dict) and isinstance(release.get("name"), str)
            and isinstance(release.get("series"), str) and series_key(release["series"])):
        raise PlanError(f"{path}: release is {release!r}, expected {{name, series}} with a "
                        "series such as 2025.2 (kubernetes:control:release, release_series)")
    settings = {"rollout_timeout": data.get("rollout_timeout", 300),
                "tools": data.get("tools") or {}, "release": release,
                "allow_downgrade": bool(data.get("allow_downgrade", False))}
    base = os.path.dirname(path)
    steps, seen = [], set()
    for i, step in enumerate(data["steps"]):
        where = f"{path}: step {i}"
        if not isinstance(step, dict):
            raise PlanError(f"{where}: expected a mapping, got {type(step).__name__}")
        missing = [k for k in STEP_KEYS if step.get(k) in (None, "")]
        if missing:
            raise PlanError(f"{where} ({step.get('name', '?')}): missing {', '.join(missing)}")
        name = step["name"]
        for key, allowed in (("tool", TOOLS), ("action", ACTIONS), ("wait", WAITS)):
            if step[key] not in allowed:
                raise PlanError(f"{where} ({name}): {key} is {step[key]!r}, expected one of "
                                f"{', '.join(allowed)}")
        if step["wait"] == "complete" and step["kind"] != "Job":
            raise PlanError(f"{where} ({name}): wait: complete is for Jobs, not {step['kind']}")
        if step["wait"] != "none" and step["tool"] != "kubectl":
            raise PlanError(f"{where} ({name}): wait: {step['wait']} needs kubectl, not "
                            f"{step['tool']}")
        if step["action"] == "patch" and (step["tool"], step["kind"]) != ("calicoctl", "Node"):
            raise PlanError(f"{where} ({name}): action: patch is for Calico Nodes (calicoctl), "
                            f"not {step['tool']} {step['kind']}")
        if step.get("await") not in (None, "exists"):
            raise PlanError(f"{where} ({name}): await is {step['await']!r}, expected exists")
        if step.get("await") and step["tool"] != "calicoctl":
            raise PlanError(f"{where} ({name}): await: exists is for calicoctl steps")
        if step["tool"] not in settings["tools"]:
            raise PlanError(f"{where} ({name}): the plan's tools do not name {step['tool']}")
        if step.get("credentials") not in (None, SUPER_ADMIN):
            raise PlanError(f"{where} ({name}): credentials is {step['credentials']!r}, "
                            f"expected {SUPER_ADMIN} (or none: admin.conf)")
        if step.get("credentials"):
            if (step["tool"], step["action"], step["kind"]) != (
                    "kubectl", "apply", "ClusterRoleBinding"):
                raise PlanError(f"{where} ({name}): credentials: {SUPER_ADMIN} is for the "
                                "ClusterRoleBinding of admin.conf's group only, not "
                                f"{step['tool']} {step['action']} {step['kind']}")
            if not settings["tools"]["kubectl"].get("super_admin_kubeconfig"):
                raise PlanError(f"{where} ({name}): credentials: {SUPER_ADMIN} but the plan's "
                                "tools:kubectl names no super_admin_kubeconfig")
        if name in seen:
            raise PlanError(f"{where}: step name {name!r} appears twice")
        seen.add(name)
        step = dict(step)
        step["file"] = os.path.join(base, step["file"])
        step.setdefault("namespace", "")
        steps.append(step)
    return steps, settings


def ref(step: dict) -> str:
    """kind/object, as the tools name it: Deployment/keystone, IPPool/default-ipv4-ippool."""
    return f"{step['kind']}/{step['object']}"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def digests(steps: list[dict]) -> dict[str, str]:
    """{step name: sha256 of its file}; a missing file is a PlanError naming it."""
    out = {}
    for step in steps:
        try:
            out[step["name"]] = sha256_file(step["file"])
        except FileNotFoundError:
            raise PlanError(f"step {step['name']} ({ref(step)}): its file {step['file']} "
                            "does not exist; apply kubernetes.master.objects first") from None
    return out


def pending(steps: list[dict], record: dict, sums: dict[str, str]) -> list[dict]:
    """The steps whose file differs from the one last applied successfully, in order."""
    return [s for s in steps if record.get(s["name"]) != sums[s["name"]]]


def missing_tools(steps: list[dict], tools: dict) -> list[str]:
    """What the pending steps need and this host lacks, each as one sentence."""
    out = []
    kubectl, calicoctl = tools.get("kubectl") or {}, tools.get("calicoctl") or {}
    used = {s["tool"] for s in steps}
    if "kubectl" in used:
        if not os.access(str(kubectl.get("binary")), os.X_OK):
            out.append(f"{kubectl.get('binary')} is not an executable: install the Kubernetes "
                       "binaries (kubernetes:common:binaries:install)")
        if not os.path.isfile(str(kubectl.get("kubeconfig"))):
            out.append(f"{kubectl.get('kubeconfig')} does not exist: apply kubernetes.master "
                       "(kubeconfigs) first")
        if any(s.get("credentials") == SUPER_ADMIN for s in steps) and \
                not os.path.isfile(str(kubectl.get("super_admin_kubeconfig"))):
            out.append(f"{kubectl.get('super_admin_kubeconfig')} does not exist: apply "
                       "kubernetes.master (kubeconfigs) first")
    if "calicoctl" in used:
        if not os.access(str(calicoctl.get("binary")), os.X_OK):
            out.append(f"{calicoctl.get('binary')} is not an executable: install calicoctl "
                       "(calico:node:calicoctl:install)")
        if not os.path.isfile(str(calicoctl.get("config"))):
            out.append(f"{calicoctl.get('config')} does not exist: apply calico.node first")
    return out


# --------------------------------------------------------------------------- record


def _read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except ValueError:
        # unreadable: forget it, so everything is applied again (every action is idempotent)
        return {}
    return data if isinstance(data, dict) else {}


def read_record(path: str) -> dict[str, str]:
    applied = _read(path).get("applied", {})
    applied = applied if isinstance(applied, dict) else {}
    return {k: v for k, v in applied.items() if isinstance(v, str)}


def read_release(path: str) -> dict | None:
    """The release the record says was last rolled out ({name, series}), if any."""
    release = _read(path).get("release")
    if isinstance(release, dict) and series_key(str(release.get("series", ""))):
        return {"name": str(release.get("name", "")), "series": str(release["series"])}
    return None


def write_record(path: str, record: dict[str, str], release: dict | None = None) -> None:
    """Atomically, mode 0600 (the directory 0700). ``release``: None keeps the one on file."""
    if release is None:
        release = read_release(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".applied-")
    data = {"applied": dict(sorted(record.items()))}
    if release:
        data["release"] = {"name": release["name"], "series": release["series"]}
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- release


def series_key(series: str) -> tuple[int, ...] | None:
    """``2025.2`` -> (2025, 2); None for anything else."""
    parts = series.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def downgrade(recorded: dict | None, release: dict | None) -> str | None:
    """Why rolling out ``release`` over ``recorded`` is a downgrade (None: it is not)."""
    if not recorded or not release:
        return None
    if series_key(release["series"]) >= series_key(recorded["series"]):
        return None
    return (f"refusing to downgrade OpenStack from {recorded['name']} ({recorded['series']}) "
            f"to {release['name']} ({release['series']}): {recorded['name']}'s contract Jobs "
            f"may have removed what {release['name']} still uses; restore the databases from "
            "a backup taken before the upgrade, or set kubernetes:control:allow_downgrade "
            "(e.g. state.apply pillar='{kubernetes: {control: {allow_downgrade: true}}}') "
            "to apply it anyway")


def rolled_out(report: dict, steps: list[dict]) -> bool:
    """Whether the run put the plan's release in place: it finished, or one of its
    contract Jobs ran (from then on the older release's schema is gone)."""
    if report["failed"] is None:
        return True
    kinds = {s["name"]: s for s in steps}
    return any(kinds[n]["kind"] == "Job" and "-contract-" in kinds[n]["object"]
               for n in report["changed"] if n in kinds)


# --------------------------------------------------------------------------- the tools


def kubectl_base(tools: dict, step: dict) -> list[str]:
    """kubectl with the admin kubeconfig (the super-admin one for a step that says so), in
    the step's namespace (none for cluster-scoped objects: kubectl refuses a --namespace
    that differs from the object's own)."""
    k = tools["kubectl"]
    kubeconfig = k["super_admin_kubeconfig"] if step.get("credentials") == SUPER_ADMIN \
        else k["kubeconfig"]
    base = [k["binary"], f"--kubeconfig={kubeconfig}"]
    if step.get("namespace"):
        base.append(f"--namespace={step['namespace']}")
    return base


def readyz_argv(tools: dict) -> list[str]:
    """`kubectl get --raw /readyz`: exit 0 and `ok` once the apiserver is ready (its etcd
    answers, its post-start hooks ran)."""
    k = tools["kubectl"]
    return [k["binary"], f"--kubeconfig={k['kubeconfig']}", "--request-timeout=5s", "get",
            "--raw", "/readyz"]


def wait_ready(tools: dict, timeout: float, wait_grace: float,
               interval: float = POLL) -> str | None:
    """Poll the apiserver's /readyz until it answers `ok`, for up to `timeout` seconds:
    None when ready, else one line saying what was waited for and the last answer."""
    argv = readyz_argv(tools)
    t0 = time.monotonic()
    tries = 0
    while True:
        tries += 1
        res = run(argv, 5 + wait_grace)
        if res["rc"] == 0 and not res["timed_out"] and res["out"].strip() == "ok":
            return None
        if time.monotonic() - t0 + interval > timeout:
            last = " ".join(res["out"].split()) or f"exit {res['rc']}"
            if len(last) > 300:
                last = last[:300] + "..."
            return (f"the apiserver was not ready within {timeout:g}s ({tries} tries of "
                    f"`kubectl --kubeconfig={tools['kubectl']['kubeconfig']} get --raw "
                    f"/readyz`), nothing applied; last answer: {last}")
        time.sleep(interval)


def calicoctl_argv(tools: dict, *args: str) -> list[str]:
    c = tools["calicoctl"]
    return [c["binary"], *args, f"--config={c['config']}"]


def apply_argv(tools: dict, step: dict, field_manager: str) -> list[str]:
    """kubectl: server-side apply (the API server merges, Salt's field manager owns what it
    sets, and no last-applied annotation copies a Secret's data into its metadata).
    calicoctl: apply (create or replace the resource in Calico's datastore)."""
    if step["tool"] == "calicoctl":
        return calicoctl_argv(tools, "apply", "-f", step["file"])
    return [*kubectl_base(tools, step), "apply", "--server-side",
            f"--field-manager={field_manager}", "--force-conflicts", "-f", step["file"]]


def delete_job_argv(tools: dict, step: dict, timeout: int) -> list[str]:
    """A Job's pod template is immutable: a changed Job is deleted (with its pods), then
    created again."""
    return [*kubectl_base(tools, step), "delete", f"job/{step['object']}", "--ignore-not-found",
            "--cascade=foreground", "--wait=true", f"--timeout={timeout}s"]


def wait_argv(tools: dict, step: dict, timeout: int) -> list[str] | None:
    if step["wait"] == "rollout":
        return [*kubectl_base(tools, step), "rollout", "status",
                f"{step['kind'].lower()}/{step['object']}", f"--timeout={timeout}s"]
    if step["wait"] == "complete":
        return [*kubectl_base(tools, step), "wait", "--for=condition=complete",
                f"job/{step['object']}", f"--timeout={timeout}s"]
    return None


def job_failed_argv(tools: dict, step: dict, timeout: int) -> list[str]:
    """kubectl wait takes one condition: a second wait, for Failed, runs beside the one
    for Complete, so a failed Job fails the step at once rather than at the timeout."""
    return [*kubectl_base(tools, step), "wait", "--for=condition=failed",
            f"job/{step['object']}", f"--timeout={timeout}s"]


def exists_argv(tools: dict, step: dict) -> list[str]:
    """`kubectl get <unless_exists>`: prints the object's name if it exists, nothing (exit
    0) if it does not."""
    return [*kubectl_base(tools, step), "get", step["unless_exists"], "--ignore-not-found",
            "-o", "name"]


def calico_get_argv(tools: dict, step: dict) -> list[str]:
    """`calicoctl get <kind> <name>`: exit 0 once the resource exists."""
    return calicoctl_argv(tools, "get", step["kind"].lower(), step["object"])


def patch_argvs(tools: dict, step: dict) -> list[list[str]]:
    """A Calico Node changed in place: `calicoctl patch` of the file's spec (a strategic
    merge: what calico-node set stays), then `calicoctl label` of each of its labels."""
    with open(step["file"], encoding="utf-8") as fh:
        obj = yaml.safe_load(fh) or {}
    kind = step["kind"].lower()
    out = []
    if obj.get("spec"):
        out.append(calicoctl_argv(tools, "patch", kind, step["object"],
                                  f"--patch={json.dumps({'spec': obj['spec']}, sort_keys=True)}"))
    for key, value in sorted(((obj.get("metadata") or {}).get("labels") or {}).items()):
        out.append(calicoctl_argv(tools, "label", f"{kind}s", step["object"], f"{key}={value}",
                                  "--overwrite"))
    return out


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def _kill(proc: subprocess.Popen) -> str:
    """Kill proc's whole process group; its output so far."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    out, _ = proc.communicate()
    return out.decode(errors="replace").strip()


def run(argv: list[str], timeout: float) -> dict:
    """Run argv (no shell) with a hard timeout that kills its whole process group.
    {rc, out, timed_out, seconds}."""
    t0 = time.monotonic()
    proc = _start(argv)
    try:
        out, _ = proc.communicate(timeout=timeout)
        out, timed_out = out.decode(errors="replace").strip(), False
    except subprocess.TimeoutExpired:
        out, timed_out = _kill(proc), True
    return {"rc": proc.returncode, "out": out, "timed_out": timed_out,
            "seconds": round(time.monotonic() - t0, 3)}


def race(argv: list[str], failed_argv: list[str], timeout: float) -> dict:
    """argv (wait for Complete) beside failed_argv (wait for Failed): the first that
    decides wins, the other is killed. Like run(), plus job_failed."""
    t0 = time.monotonic()
    main, watch = _start(argv), _start(failed_argv)
    watching = True
    while True:
        if watching and watch.poll() is not None:
            watching = False
            out, _ = watch.communicate()
            if watch.returncode == 0:
                _kill(main)
                return {"rc": 1, "out": out.decode(errors="replace").strip(),
                        "timed_out": False, "job_failed": True,
                        "seconds": round(time.monotonic() - t0, 3)}
        if main.poll() is not None:
            out, _ = main.communicate()
            if watching:
                _kill(watch)
            return {"rc": main.returncode, "out": out.decode(errors="replace").strip(),
                    "timed_out": False, "seconds": round(time.monotonic() - t0, 3)}
        if time.monotonic() - t0 > timeout:
            out = _kill(main)
            if watching:
                _kill(watch)
            return {"rc": main.returncode, "out": out, "timed_out": True,
                    "seconds": round(time.monotonic() - t0, 3)}
        time.sleep(0.05)


# --------------------------------------------------------------------------- secrets


def secret_values(steps: list[dict]) -> set[str]:
    """Every value (as stored and decoded) of every Secret the plan applies."""
    values: set[str] = set()
    for step in steps:
        if step["kind"] != "Secret":
            continue
        try:
            with open(step["file"], encoding="utf-8") as fh:
                docs = list(yaml.safe_load_all(fh))
        except (OSError, yaml.YAMLError):
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            for value in (doc.get("stringData") or {}).values():
                values.add(str(value))
            for value in (doc.get("data") or {}).values():
                values.add(str(value))
                try:
                    values.add(base64.b64decode(str(value), validate=True).decode())
                except (ValueError, UnicodeDecodeError):
                    pass
    # a value of a few characters would redact ordinary words from messages
    return {v for v in values if len(v.strip()) >= 4}


def redact(text: str, values: set[str]) -> str:
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
        for line in value.splitlines():
            if len(line.strip()) >= 4:
                text = text.replace(line, REDACTED)
    return text


# --------------------------------------------------------------------------- the run


def poll(argv: list[str], timeout: float, hard: float, interval: float) -> dict:
    """Run argv until it exits 0, for up to `timeout` seconds; like run(), plus tries.
    The last answer is kept: it says why the object is not there yet."""
    t0 = time.monotonic()
    tries = 0
    while True:
        tries += 1
        res = run(argv, hard)
        if res["rc"] == 0 and not res["timed_out"]:
            break
        if time.monotonic() - t0 + interval > timeout:
            res = dict(res, timed_out=True, rc=res["rc"] or 1)
            break
        time.sleep(interval)
    return dict(res, tries=tries, seconds=round(time.monotonic() - t0, 3))


def phases(step: dict, tools: dict, field_manager: str, timeout: int) -> list[tuple[str, list]]:
    """(phase, argv) in order for one step (the await and the Job wait are special-cased
    by execute)."""
    out = []
    if step.get("await") == "exists":
        out.append(("await", calico_get_argv(tools, step)))
    if step["action"] == "patch":
        out += [("patch", argv) for argv in patch_argvs(tools, step)]
    else:
        if step["kind"] == "Job" and step["tool"] == "kubectl":
            out.append(("delete", delete_job_argv(tools, step, timeout)))
        out.append(("apply", apply_argv(tools, step, field_manager)))
    wait = wait_argv(tools, step, timeout)
    if wait:
        out.append(("wait", wait))
    return out


def execute(steps: list[dict], record: dict[str, str], sums: dict[str, str], *, tools: dict,
            field_manager: str, rollout_timeout: int, wait_grace: float, save=None,
            interval: float = POLL, api_timeout: float = 300) -> dict:
    """Apply and wait for every pending step in order; stop at the first failure.

    Before the first step (when any is pending) the apiserver's /readyz is awaited for
    up to api_timeout seconds; if it never answers ok, nothing is applied (the failure's
    phase is `ready`).

    `save(record)` is called after each successful step. A step's own `timeout` wins over
    rollout_timeout. Returns the report:
    {changed, skipped, steps: [{name, tool, kind, object, apply_seconds, wait_seconds}],
     rollouts: {name: seconds}, failed: None | {name, kind, object, phase, timed_out,
     message}, not_applied: [names]}."""
    todo = pending(steps, record, sums)
    todo_names = {s["name"] for s in todo}
    secrets = secret_values(steps)
    report = {"changed": [], "skipped": [s["name"] for s in steps if s["name"] not in todo_names],
              "steps": [], "rollouts": {}, "failed": None, "not_applied": []}

    def fail(i, step, timing, phase, res, timed_out, timeout, hard):
        report["steps"].append(timing)
        report["failed"] = {
            "name": step["name"], "kind": step["kind"], "object": step["object"],
            "phase": phase, "timed_out": timed_out,
            "message": describe(step, phase, res, timed_out, timeout, hard, secrets)}
        report["not_applied"] = [s["name"] for s in todo[i + 1:]]
        return report

    if todo:
        not_ready = wait_ready(tools, api_timeout, wait_grace, interval)
        if not_ready:
            report["failed"] = {"name": "apiserver-readyz", "kind": "", "object": "/readyz",
                                "phase": "ready", "timed_out": True,
                                "message": redact(not_ready, secrets)}
            report["not_applied"] = [s["name"] for s in todo]
            return report
    for i, step in enumerate(todo):
        timeout = int(step.get("timeout") or rollout_timeout)
        hard = timeout + wait_grace
        timing = {"name": step["name"], "tool": step["tool"], "kind": step["kind"],
                  "object": step["object"], "apply_seconds": 0.0, "wait_seconds": None}
        if step.get("unless_exists"):
            # e.g. a release's bootstrap Job (a full db_sync) once the role's workload
            # exists: an upgrade goes through expand / migrate / contract instead
            res = run(exists_argv(tools, step), hard)
            if res["rc"] != 0 or res["timed_out"]:
                return fail(i, step, timing, "check", res, res["timed_out"], timeout, hard)
            if res["out"].strip():
                record[step["name"]] = sums[step["name"]]
                report["skipped"].append(step["name"])
                report.setdefault("skipped_existing", []).append(step["name"])
                if save:
                    save(record)
                continue
        for phase, argv in phases(step, tools, field_manager, timeout):
            if phase == "await":
                res = poll(argv, timeout, hard, interval)
            elif phase == "wait" and step["wait"] == "complete":
                res = race(argv, job_failed_argv(tools, step, timeout), hard)
            else:
                res = run(argv, hard)
            if phase in ("wait", "await"):
                timing["wait_seconds"] = round((timing["wait_seconds"] or 0) + res["seconds"], 3)
            else:
                timing["apply_seconds"] = round(timing["apply_seconds"] + res["seconds"], 3)
            timed_out = res["timed_out"] or any(
                m in res["out"].lower() for m in KUBECTL_TIMEOUT_MARKERS)
            if res["rc"] != 0 or res["timed_out"]:
                return fail(i, step, timing, phase, res, timed_out, timeout, hard)
        report["steps"].append(timing)
        if timing["wait_seconds"] is not None:
            report["rollouts"][step["name"]] = timing["wait_seconds"]
        record[step["name"]] = sums[step["name"]]
        report["changed"].append(step["name"])
        if save:
            save(record)
    return report


def describe(step: dict, phase: str, res: dict, timed_out: bool, timeout: int,
             hard: float, secrets: set[str]) -> str:
    """What failed, for the comment and the event: the object, the phase, timeout or exit
    code, and the tool's output (Secret values redacted)."""
    tool = step["tool"]
    command = {"check": "kubectl get", "delete": "kubectl delete", "apply": f"{tool} apply",
               "patch": "calicoctl patch/label", "await": "calicoctl get",
               "wait": "kubectl rollout status" if step["wait"] == "rollout" else "kubectl wait"}
    failed = {"check": f"checking whether {step.get('unless_exists')} exists failed",
              "delete": "deleting the previous Job failed", "apply": f"{tool} apply failed",
              "patch": f"calicoctl could not change {ref(step)}",
              "await": (f"{ref(step)} was not registered (calico-node creates it when it "
                        "starts on that node)"),
              "wait": ("rollout did not complete" if step["wait"] == "rollout"
                       else "Job did not complete")}[phase]
    if res.get("job_failed"):
        what = "the Job failed (condition Failed)"
    elif phase == "await" and timed_out:
        what = f"timed out: {failed} within {timeout}s ({res.get('tries', 1)} tries)"
    elif res["timed_out"]:
        what = f"timed out: {command[phase]} still running after {hard:g}s, killed"
    elif timed_out:
        what = f"timed out: {failed} within {timeout}s"
    else:
        what = f"{failed} (exit {res['rc']})"
    out = redact(res["out"], secrets)
    if len(out) > 2000:
        out = "..." + out[-2000:]
    return f"{ref(step)} (step {step['name']}): {what}" + (f": {out}" if out else "")


def summary(report: dict) -> str:
    if report["failed"]:
        f = report["failed"]
        lines = [f"FAILED at {f['message']}"]
        if report["changed"]:
            lines.append(f"applied before it: {', '.join(report['changed'])}")
        if report["not_applied"]:
            lines.append(f"not applied (after the failure): {', '.join(report['not_applied'])}")
        return "\n".join(lines)
    existing = report.get("skipped_existing") or []
    note = (f"; skipped because their workload exists: {', '.join(existing)}"
            if existing else "")
    if not report["changed"]:
        return f"nothing changed: {len(report['skipped'])} object(s) as last applied{note}"
    return (f"applied {len(report['changed'])} object(s) in order: "
            f"{', '.join(report['changed'])}; {len(report['skipped'])} unchanged{note}")


# --------------------------------------------------------------------------- the state


def applied(name, state_file="/var/lib/stacksalt/kubernetes/applied.json", rollout_timeout=None,
            wait_grace=10, field_manager="stacksalt",
            event_tag="stacksalt/kubernetes/objects/applied", tools=None, api_timeout=300):
    """The objects of the plan `name` (path of apply-plan.yaml) applied in order.

    name
        the apply plan written by kubernetes.master.objects
    state_file
        where the sha256 of each successfully applied step is kept (0600)
    rollout_timeout
        seconds a step may wait when it names no `timeout` of its own (default: the
        plan's); the tool is killed wait_grace seconds later if it does not return
    event_tag
        the tag of the event sent to the salt master after a real run
    api_timeout
        seconds to wait for the apiserver's /readyz before the first step
    tools
        overrides of the plan's `tools` ({kubectl: {binary, kubeconfig,
        super_admin_kubeconfig}, calicoctl:
        {binary, config}}), merged per tool
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    try:
        steps, settings = load_plan(name)
        sums = digests(steps)
    except PlanError as exc:
        ret["comment"] = str(exc)
        return ret
    plan_tools = {k: dict(v) for k, v in settings["tools"].items()}
    for tool, override in (tools or {}).items():
        plan_tools.setdefault(tool, {}).update(override or {})
    timeout = int(rollout_timeout or settings["rollout_timeout"])
    record = read_record(state_file)
    release = settings["release"]
    refused = downgrade(read_release(state_file), release)
    if refused and not settings["allow_downgrade"]:
        ret["comment"] = refused
        return ret
    todo = pending(steps, record, sums)
    if __opts__.get("test"):  # noqa: F821 (Salt's loader injects __opts__, __salt__)
        if not todo:
            ret.update(result=True, comment=f"nothing would be applied: {len(steps)} "
                       "object(s) as last applied")
            return ret
        ret["result"] = None
        ret["comment"] = (f"would apply {len(todo)} object(s) in order (no tool run): "
                          + ", ".join(f"{s['name']} ({s['tool']} {s['action']} {ref(s)}, "
                                      f"wait {s['wait']})" for s in todo))
        ret["changes"] = {"would_apply": [s["name"] for s in todo]}
        return ret
    if not todo:
        # nothing to do and nothing run; still report, so the master sees every run
        report = execute(steps, record, sums, tools=plan_tools, field_manager=field_manager,
                         rollout_timeout=timeout, wait_grace=float(wait_grace))
    else:
        missing = missing_tools(todo, plan_tools)
        if missing:
            ret["comment"] = "; ".join(missing)
            return ret
        report = execute(
            steps, record, sums, tools=plan_tools, field_manager=field_manager,
            rollout_timeout=timeout, wait_grace=float(wait_grace),
            save=lambda r: write_record(state_file, r), api_timeout=float(api_timeout))
    if release and rolled_out(report, steps) and release != read_release(state_file):
        write_record(state_file, read_record(state_file), release)
    t_total = round(sum(s["apply_seconds"] + (s["wait_seconds"] or 0)
                        for s in report["steps"]), 3)
    minion = __opts__.get("id")  # noqa: F821
    event = {"minion": minion, "plan": name, "result": report["failed"] is None,
             "seconds": t_total, **report}
    sent = __salt__["event.send"](event_tag, event)  # noqa: F821
    ret["result"] = report["failed"] is None
    ret["comment"] = summary(report)
    if not sent:
        ret["comment"] += f"\n(the report event {event_tag} could not be sent to the master)"
    if report["changed"] or report["failed"]:
        ret["changes"] = {k: report[k] for k in ("changed", "rollouts", "failed", "not_applied")
                          if report[k]}
        ret["changes"]["steps"] = report["steps"]
    return ret
