"""`stacksalt ci run --from REV --to REV`: the release pipeline, one command any CI calls.

Run in a checkout of the deployment repository at the pushed revision (its ``stacksalt/``
submodule updated), it does, in order, and stops at the first failure:

1. **model check** of the whole repository: any error stops it; nothing is built, the
   master is not touched;
2. **image plan**: every image's inputs digest against the registry's labels (build what
   changed, reuse the rest), printed with the reason for each;
3. **build, scan, push** of the changed images: a registry that does not answer or refuses
   the login stops it before the master is touched;
4. **the master moves**: salt-api runs the runner ``stacksalt_ci.deploy`` on the master,
   which switches its checkout to the revision atomically (only now: a failed pipeline
   leaves the master on the last good revision);
5. **what an apply will change**: ``state.apply test=True`` on the minions whose rendered
   model differs between the two revisions (all of them when the pinned stacksalt
   changed), and the upgrade plan of the cluster's objects;
6. **the report**: kept on the master (``stacksalt_ci.report``: JSON and text) with an
   event ``stacksalt/ci/<deployment>/result``, printed, and written to ``--report``.

The master is reached only through salt-api (rest_cherrypy over TLS, the cluster's CA),
as the user ``salt:api`` names in the model, with a password read from the file
``$STACKSALT_CI_PASSWORD_FILE`` (never from the command line).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from stacksalt import paths
from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError

ZERO = "0" * 40
# the file holding the registry password the image step pushes with
REGISTRY_PASSWORD_ENV = "STACKSALT_CI_REGISTRY_PASSWORD_FILE"


class PipelineError(StacksaltError):
    """A step failed; the message says which and what state the master is in."""


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class Report:
    deployment: str
    revision: str
    previous: str | None
    ok: bool = True
    steps: list[Step] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    dry_run: dict[str, Any] = field(default_factory=dict)
    upgrade_plan: list[str] = field(default_factory=list)
    master: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = self.text()
        return data

    def text(self) -> str:
        head = "PASSED" if self.ok else "FAILED"
        out = [f"stacksalt ci: deployment {self.deployment}, {self.previous or 'nothing'} -> "
               f"{self.revision}: {head}"]
        for s in self.steps:
            out.append(f"  [{'ok' if s.ok else 'FAILED'}] {s.name} ({s.seconds:.1f} s): "
                       f"{s.summary}")
            out.extend(f"      {d}" for d in s.details)
        return "\n".join(out)


class Pipeline:
    """The steps, each timed into the report; the first failure ends the run."""

    def __init__(self, report: Report, console: Console) -> None:
        self.report, self.console = report, console

    def step(self, name: str, fn, *args, **kwargs):
        self.console.print(f"[bold cyan]== {name}[/]")
        started = time.monotonic()
        try:
            summary, details, value = fn(*args, **kwargs)
        except StacksaltError as exc:
            self.report.steps.append(Step(name, False, time.monotonic() - started, str(exc)))
            self.report.ok = False
            raise
        except BaseException as exc:  # a bug: the report says FAILED, the traceback follows
            self.report.steps.append(Step(name, False, time.monotonic() - started,
                                          f"{type(exc).__name__}: {exc}"))
            self.report.ok = False
            raise
        self.report.steps.append(Step(name, True, time.monotonic() - started, summary, details))
        self.console.print(f"   {summary}")
        return value


# -- the steps ------------------------------------------------------------------------------


def model_check(deployment: str) -> tuple[str, list[str], None]:
    from stacksalt.model import check

    result = check.run(paths.reclass_dir(deployment), deployment)
    if result.errors:
        lines = [str(e) for e in result.errors]
        raise PipelineError(f"model check: {len(lines)} error(s), nothing built, the master "
                            f"untouched; first: {lines[0]}")
    return (f"{result.nodes} nodes, {result.classes} class files, no errors", [], None)


def images(deployment: str, console: Console, registry_password: str | None,
           ca: Path | None) -> tuple[str, list[str], list[dict[str, Any]]]:
    from stacksalt.images import build
    from stacksalt.images.errors import ImagesError

    try:
        decided = build.plan_images(console, deployment, password=registry_password, ca=ca)
        todo = [d.image for d in decided if d.build]
        built = []
        if todo:
            # the plan above decided: build exactly those (not a second registry lookup),
            # scan them, and only then push
            built = build.build_images(None, console, deployment, todo, do_push=True,
                                       password=registry_password, ca=ca,
                                       before_push=lambda tags: _scan(deployment, tags,
                                                                      console))
    except ImagesError as exc:
        raise PipelineError(f"images: {exc}; the master untouched") from None
    rows = [d.as_dict() for d in decided]
    digests = {b.name: b.digest for b in built if getattr(b, "digest", None)}
    for row in rows:
        if row["image"] in digests:
            row["pushed"] = digests[row["image"]]
    n = sum(1 for d in decided if d.build)
    return (f"{n} built and pushed, {len(decided) - n} reused",
            [f"{d.image}: {d.action}" + (f" ({d.reason})" if d.reason else "")
             for d in decided], rows)


def _scan(deployment: str, tags: list[str], console: Console) -> None:
    import docker

    from stacksalt import secrets
    from stacksalt.images import scan

    values = secrets.decrypt_all(deployment)
    findings = scan.scan_images(docker.from_env(), tags, values, console)
    if findings:
        raise PipelineError(f"images: {len(findings)} secret value(s) found in the images "
                            f"({findings[0]}); nothing pushed to the master")


def touched_nodes(deployment: str, old_root: Path | None, new_root: Path,
                  old: Deployment | None = None) -> list[str]:
    """Nodes whose rendered model differs between the revisions (every node when the
    pinned stacksalt differs, or when there is no previous revision). ``old`` is the
    previous revision's model if the caller loaded it already."""
    new = Deployment.load(deployment, new_root / "reclass")
    if old_root is None:
        return list(new.node_names)
    old = old or Deployment.load(deployment, old_root / "reclass")
    if _product_pin(old_root) != _product_pin(new_root):
        return list(new.node_names)
    out = []
    for node in new.node_names:
        if node not in old.node_names or _what_salt_sees(old, node) != _what_salt_sees(new, node):
            out.append(node)
    return out


def previous_model(deployment: str, root: Path) -> Deployment | None:
    """The previous revision's model, rendered; None when it does not render."""
    dep = Deployment.load(deployment, root / "reclass")
    try:
        dep.rendered  # noqa: B018 (renders every node, once: touched_nodes reuses it)
    except Exception:  # reclass' own error types
        return None
    return dep


def _what_salt_sees(dep: Deployment, node: str) -> tuple[Any, ...]:
    """The parts of a node's render its states read: not where its files lay, and not
    ``_param`` (reclass' own parameters, which reach every node; a state reads only the
    keys they are interpolated into), except the cluster name the secrets pillar uses."""
    info = dep.rendered[node]
    params = dict(info["parameters"])
    cluster = (params.pop("_param", None) or {}).get("cluster_name")
    return params, cluster, info["applications"], info["classes"]


def _product_pin(root: Path) -> str:
    """A fingerprint of the product tree a revision uses (the formulas it serves)."""
    import hashlib

    digest = hashlib.sha256()
    formulas = paths.formulas_dir(root)
    for f in sorted(formulas.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            digest.update(f.relative_to(formulas).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


# -- the whole run --------------------------------------------------------------------------


def read_password(env: str) -> str | None:
    path = os.environ.get(env)
    if not path:
        return None
    p = Path(path)
    if p.stat().st_mode & 0o077:
        raise PipelineError(f"{p} (${env}): readable by others; chmod 600 it")
    return p.read_text().strip()


def run(deployment: str, from_rev: str, to_rev: str, master, console: Console | None = None,
        report_file: Path | None = None, ca: Path | None = None) -> Report:
    """The pipeline; ``master`` is a salt-api client (pipeline.saltapi.SaltAPI)."""
    from stacksalt.upgrade import plan as upgrade

    console = console or Console()
    previous = None if from_rev in (None, "", ZERO) else from_rev
    report = Report(deployment, to_rev, previous)
    pipe = Pipeline(report, console)
    try:
        pipe.step("model check", model_check, deployment)
        report.images = pipe.step("images", images, deployment, console,
                                  read_password(REGISTRY_PASSWORD_ENV), ca)
        report.master = pipe.step("master", _move_master, master, to_rev)
        repo = paths.deployment_root(deployment)
        # compared with what the master served (the last good revision), not with the
        # branch's previous tip: a failed push in between never reached the master
        served = report.master.get("previous")
        if served and served != to_rev and commit_of(repo, served):
            previous = report.previous = served
        with tempfile.TemporaryDirectory(prefix="stacksalt-ci-") as tmp:
            new_root = upgrade.export(repo, to_rev, Path(tmp) / "new", deployment)
            old_root = upgrade.export(repo, previous, Path(tmp) / "old", deployment) \
                if previous else None
            old = previous_model(deployment, old_root) if old_root else None
            if old_root is not None and old is None:
                # e.g. the branch's broken tip, when the master served no revision yet
                console.print(f"the previous revision {previous[:12]} does not render: "
                              "every minion is dry-run, and there is no upgrade plan")
                old_root = previous = report.previous = None
            nodes = touched_nodes(deployment, old_root, new_root, old)
        report.dry_run = pipe.step("dry run", _dry_run, master, nodes)
        if previous:
            report.upgrade_plan = pipe.step("upgrade plan", _upgrade_plan, deployment,
                                            previous, to_rev)
    except StacksaltError:
        pass
    finally:
        console.print(report.text())
        data = report.as_dict()
        if report_file:
            report_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        try:
            master.runner("stacksalt_ci.report", deployment=deployment, report=data)
        except StacksaltError as exc:
            console.print(f"[red]the report could not be kept on the master: {exc}[/]")
    return report


def commit_of(repo: Path, rev: str) -> str | None:
    """The full id of commit ``rev`` in ``repo`` (None: no such commit there)."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                           f"{rev}^{{commit}}"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _move_master(master, revision: str) -> tuple[str, list[str], dict[str, Any]]:
    out = master.runner("stacksalt_ci.deploy", revision=revision)
    if not isinstance(out, dict) or out.get("revision") != revision:
        raise PipelineError(f"master: stacksalt_ci.deploy answered {out!r}; the master stays "
                            "on its last good revision")
    return (f"serves {revision[:12]} (was {str(out.get('previous'))[:12]})", [], out)


def _dry_run(master, nodes: list[str]) -> tuple[str, list[str], dict[str, Any]]:
    if not nodes:
        return ("no minion's model changed", [], {})
    master.local(nodes, "saltutil.refresh_pillar")
    returns = master.local(nodes, "state.apply", kwarg={"test": True})
    summary: dict[str, Any] = {}
    for node in nodes:
        states = returns.get(node)
        if not isinstance(states, dict):
            summary[node] = {"error": str(states)[:500]}
            continue
        changes = sorted(k.split("_|-")[1] for k, v in states.items()
                         if isinstance(v, dict) and v.get("result") is None)
        failed = sorted(k.split("_|-")[1] for k, v in states.items()
                        if isinstance(v, dict) and v.get("result") is False)
        summary[node] = {"would_change": changes, "failed": failed}
    details = [f"{n}: {len(s.get('would_change', []))} would change"
               + (f", {len(s['failed'])} FAILED" if s.get("failed") else "")
               + (f", {s['error']}" if s.get("error") else "") for n, s in summary.items()]
    if any(s.get("failed") or s.get("error") for s in summary.values()):
        raise PipelineError(f"dry run: a minion fails its state.apply test=True ({details}); "
                            "the master serves the new revision, nothing was applied")
    total = sum(len(s["would_change"]) for s in summary.values())
    return (f"{total} states would change on {len(nodes)} minion(s)", details, summary)


def _upgrade_plan(deployment: str, previous: str, to_rev: str) -> tuple[str, list[str], list]:
    from stacksalt.upgrade import plan as upgrade

    # a downgrade is planned and said: the report tells the admin the apply will refuse it
    result = upgrade.plan(deployment, previous, to_rev, allow_downgrade=True)
    lines = upgrade.lines(result)
    summary = f"{len(result.changes)} objects change, {result.unchanged} unchanged"
    if result.downgrade:
        lines = [f"DOWNGRADE: {result.downgrade}", *lines]
        summary = f"DOWNGRADE (the apply refuses it unless allowed); {summary}"
    return (summary, lines, lines)
