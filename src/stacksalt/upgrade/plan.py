"""``stacksalt upgrade plan FROM_REV TO_REV``: what an upgrade changes, object by object.

The model (``reclass/``) and the formulas of each git revision are exported with ``git
archive`` into a temporary root; the deployment's secrets pillar is taken from the
checkout (it is git-ignored and never in a revision). The objects builder of each root
(``formulas/_modules/stacksalt_objects.py``, what ``kubernetes.master.objects`` writes)
builds the objects of one Kubernetes master from that root's model (nothing runs); the
objects of the two builds are compared field by field and printed in the order of the
new apply plan, each change classified:

- ``image-tag``: a container's image differs only in its tag;
- ``release-job``: a per-release Job that is new (or gone: the old release's Job, no
  longer rendered);
- ``config-hash``: ``stacksalt.io/config-hash`` of a pod template (the config baked into
  the image changed: the pods roll);
- ``secret-hash``: ``stacksalt.io/secret-hash`` (a secret the pods use changed);
- ``secret``: a value of the Secret (never printed);
- ``other``: anything else (a new Service port, replicas, a probe, ...).

A release bump must show only image tags, release Jobs and config hashes.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from stacksalt import objects, paths, saltmodules, secrets
from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError

APPLY_STATE = Path("_states") / "stacksalt_kubernetes.py"
CONFIG_HASH = "stacksalt.io/config-hash"
SECRET_HASH = "stacksalt.io/secret-hash"
CATEGORIES = ("image-tag", "release-job", "config-hash", "secret-hash", "secret", "other")
HIDDEN = "(secret value, not shown)"


class UpgradeError(StacksaltError):
    """A revision cannot be exported or rendered; the message says what to do."""


@dataclass
class FieldChange:
    path: str
    old: Any
    new: Any
    category: str


@dataclass
class ObjectChange:
    step: str  # <kind>/<name>, as in the apply plan
    file: str  # relative to the objects dir
    status: str  # "changed", "added" or "removed"
    category: str  # for added/removed objects; "" for changed ones (see fields)
    fields: list[FieldChange] = field(default_factory=list)
    unless_exists: str = ""  # the plan skips the step when this object exists

    @property
    def categories(self) -> set[str]:
        return {f.category for f in self.fields} | ({self.category} if self.category else set())


@dataclass
class Render:
    minion: str
    objects_dir: str
    objects: dict[str, dict[str, Any]]  # file relative to objects_dir -> object
    order: list[str]  # files in apply-plan order
    unless_exists: dict[str, str] = field(default_factory=dict)  # file -> kind/name
    release: dict[str, str] | None = None  # {name, series} the plan rolls out


@dataclass
class UpgradePlan:
    deployment: str
    old: Render
    new: Render
    changes: list[ObjectChange]
    unchanged: int
    downgrade: str | None = None  # why this is a downgrade (planned with allow_downgrade)

    def counts(self) -> Counter:
        out: Counter = Counter()
        for change in self.changes:
            for category in change.categories:
                out[category] += 1
        return out


# -- the two roots --------------------------------------------------------------------------


def _git(repo: Path, *args: str, binary: bool = False) -> Any:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                          text=not binary)
    if proc.returncode != 0:
        err = proc.stderr if not binary else proc.stderr.decode(errors="replace")
        raise UpgradeError(f"git {' '.join(args)} in {repo} failed: {err.strip()}")
    return proc.stdout


def export(repo: Path, rev: str, dest: Path, deployment: str) -> Path:
    """The deployment repository of ``deployment`` as it was at ``rev`` of the git
    repository ``repo``, under ``dest``, plus its (git-ignored) secrets from the work tree;
    returns the exported deployment root.

    Two shapes: a deployment repository whose ``stacksalt/`` is a git submodule (its
    ``reclass/``, ``pillar/`` and ``stacksalt.yml`` at ``rev``, and the product at the
    commit ``rev`` pins), or an example inside a stacksalt checkout (``deployments/<name>/``
    and the checkout's formulas and classes, both at ``rev``)."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                           f"{rev}^{{commit}}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UpgradeError(f"{rev!r} is not a commit of {repo}: give a branch, tag or commit "
                           "id (git log --oneline)")
    commit = proc.stdout.strip()
    here = paths.deployment_root(deployment)
    # where the deployment repository sits in its git repository ("" or deployments/<name>)
    prefix = _git(here, "rev-parse", "--show-prefix").strip().rstrip("/")
    own = [f"{prefix}/{p}" if prefix else p for p in ("reclass", "pillar", paths.CONFIG)]
    pinned = _git(repo, "ls-tree", commit, f"{prefix}/{paths.PRODUCT_LINK}" if prefix
                  else paths.PRODUCT_LINK).split()
    dest.mkdir(parents=True, exist_ok=True)
    if pinned and pinned[1] == "commit":  # a submodule: the product at the pinned commit
        _extract(_git(repo, "archive", "--format=tar", commit, *own, binary=True), dest)
        product = dest / prefix / paths.PRODUCT_LINK
        product.mkdir(parents=True, exist_ok=True)
        _extract(_git(here / paths.PRODUCT_LINK, "archive", "--format=tar", pinned[2],
                      "formulas", "reclass/classes", "images", binary=True), product)
    else:  # an example inside the checkout: the checkout's own parts at the same commit,
        # and the example's stacksalt symlink to them
        product_parts = [p for p in ("formulas", "reclass/classes/service",
                                     "reclass/classes/system", "images",
                                     f"{prefix}/{paths.PRODUCT_LINK}" if prefix else "")
                         if p and _git(repo, "ls-tree", commit, p).strip()]
        _extract(_git(repo, "archive", "--format=tar", commit, *own, *product_parts,
                      binary=True), dest)
    root = dest / prefix if prefix else dest
    if not (root / "reclass").is_dir():
        raise UpgradeError(f"revision {rev} of {repo} has no deployment repository at "
                           f"{prefix or '.'} (no reclass/ there): compare revisions made since "
                           "the deployment repositories")
    secrets = paths.pillar_dir(deployment) / "secrets" / f"{deployment}.sls"
    if not secrets.is_file():
        raise UpgradeError(f"{secrets} does not exist: run `stacksalt secrets generate "
                           f"{deployment}` (test deployments) or put the deployment's "
                           "encrypted secrets there")
    target = root / "pillar" / "secrets" / secrets.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(secrets, target)
    return root


def _extract(data: bytes, dest: Path) -> None:
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def first_master(dep: Deployment) -> str:
    """The first node with kubernetes:control:enabled (it renders the OpenStack roles)."""
    masters = objects.control_masters(dep)
    if not masters:
        raise UpgradeError(f"no node of deployment {dep.name} has kubernetes:control:enabled "
                           "(the Kubernetes masters render the OpenStack objects)")
    return masters[0]


def render(deployment: str, root: Path) -> Render:
    """The objects one master of ``root`` writes, keyed by their file, as that root's
    builder makes them."""
    dep = Deployment.load(deployment, root / "reclass")
    minion = first_master(dep)
    if not (paths.formulas_dir(root) / objects.MODULE).is_file():
        raise UpgradeError(f"this revision has no objects builder (formulas/{objects.MODULE}): "
                           "compare revisions made since the one object plan")
    try:
        built = objects.build(dep, minion, secrets.decrypt_all(deployment), root=root)
    except objects.error_type(root) as exc:
        raise UpgradeError(f"the objects of {minion} cannot be built: {exc}") from exc
    found = {f["file"]: f["object"] for f in built["files"]}
    steps = built["plan"].get("steps", [])
    order = [s["file"] for s in steps if s["file"] in found]
    order += sorted(set(found) - set(order))
    unless = {s["file"]: s["unless_exists"] for s in steps if s.get("unless_exists")}
    # (a revision from before the plan named its release has none: no direction check)
    return Render(minion, built["dir"], found, order, unless, built["plan"].get("release"))


def downgrade(old: Render, new: Render) -> str | None:
    """Why going from ``old`` to ``new`` is an OpenStack downgrade (None: it is not): the
    apply state's own rule (formulas/_states/stacksalt_kubernetes.py)."""
    known = [r for r in (old.release, new.release) if r and r.get("name") and r.get("series")]
    if len(known) != 2:
        return None
    return saltmodules.load(APPLY_STATE).downgrade(old.release, new.release)


# -- the comparison -------------------------------------------------------------------------


def _step(obj: dict[str, Any]) -> str:
    return f"{str(obj.get('kind', '')).lower()}/{(obj.get('metadata') or {}).get('name', '')}"


def _named(items: list[Any]) -> dict[str, Any] | None:
    """A list of mappings with unique names (containers, env, ports, volumes), by name."""
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        names = [str(i["name"]) for i in items]
        if len(set(names)) == len(names):
            return dict(zip(names, items, strict=True))
    return None


def _walk(old: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append((sub, old[key], None))
            elif key not in old:
                out.append((sub, None, new[key]))
            else:
                _walk(old[key], new[key], sub, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        a, b = _named(old), _named(new)
        if a is not None and b is not None:
            for name in [*a, *(n for n in b if n not in a)]:
                sub = f"{path}[{name}]"
                if name not in b:
                    out.append((sub, a[name], None))
                elif name not in a:
                    out.append((sub, None, b[name]))
                else:
                    _walk(a[name], b[name], sub, out)
            return
        if len(old) == len(new):
            for i, (x, y) in enumerate(zip(old, new, strict=True)):
                _walk(x, y, f"{path}[{i}]", out)
            return
    if old != new or type(old) is not type(new):
        out.append((path, old, new))


def _image_tag_only(path: str, old: Any, new: Any) -> bool:
    if not path.endswith(".image") or not isinstance(old, str) or not isinstance(new, str):
        return False
    return old.rpartition(":")[0] == new.rpartition(":")[0] and old != new


def classify(obj: dict[str, Any], path: str, old: Any, new: Any) -> str:
    if obj.get("kind") == "Secret" and (path.startswith(("data", "stringData"))):
        return "secret"
    if path.endswith(CONFIG_HASH):
        return "config-hash"
    if path.endswith(SECRET_HASH):
        return "secret-hash"
    if _image_tag_only(path, old, new):
        return "image-tag"
    return "other"


def compare(old: Render, new: Render) -> tuple[list[ObjectChange], int]:
    """Changes in the new apply order (objects gone from it last); unchanged count."""
    changes, unchanged = [], 0
    for rel in [*new.order, *(r for r in old.order if r not in new.objects)]:
        before, after = old.objects.get(rel), new.objects.get(rel)
        obj = after if after is not None else before
        assert obj is not None
        release_job = obj.get("kind") == "Job"
        if before is None:
            changes.append(ObjectChange(_step(obj), rel, "added",
                                        "release-job" if release_job else "other",
                                        unless_exists=new.unless_exists.get(rel, "")))
            continue
        if after is None:
            changes.append(ObjectChange(_step(obj), rel, "removed",
                                        "release-job" if release_job else "other"))
            continue
        diffs: list[tuple[str, Any, Any]] = []
        _walk(before, after, "", diffs)
        if not diffs:
            unchanged += 1
            continue
        fields = []
        for path, a, b in diffs:
            category = classify(obj, path, a, b)
            if category == "secret":
                a, b = HIDDEN if a is not None else None, HIDDEN if b is not None else None
            fields.append(FieldChange(path, a, b, category))
        changes.append(ObjectChange(_step(obj), rel, "changed", "", fields))
    return changes, unchanged


def plan(deployment: str, from_rev: str, to_rev: str, repo: Path | None = None,
         progress: Any = None, allow_downgrade: bool = False) -> UpgradePlan:
    """Render both revisions' manifests and compare them. A downgrade (an older OpenStack
    series) is refused unless ``allow_downgrade``; the plan's ``downgrade`` says why."""
    repo = Path(repo or paths.deployment_root(deployment))
    renders = []
    with tempfile.TemporaryDirectory(prefix="stacksalt-upgrade-") as tmp:
        for label, rev in (("from", from_rev), ("to", to_rev)):
            if progress:
                progress(f"rendering {deployment} at {rev} ({label})")
            root = export(repo, rev, Path(tmp) / label, deployment)
            renders.append(render(deployment, root))
    why = downgrade(*renders)
    if why and not allow_downgrade:
        raise UpgradeError(f"{from_rev} -> {to_rev}: {why}; `stacksalt upgrade plan "
                           "--allow-downgrade` shows the plan anyway")
    changes, unchanged = compare(*renders)
    return UpgradePlan(deployment, renders[0], renders[1], changes, unchanged, why)


# -- output ---------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if isinstance(value, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12]
    return text if len(text) <= 100 else text[:97] + "..."


def lines(result: UpgradePlan) -> list[str]:
    out = []
    for change in result.changes:
        if change.status != "changed":
            what = ("new per-release Job" if change.status == "added" else
                    "per-release Job of the old release, no longer rendered") \
                if change.category == "release-job" else f"object {change.status}"
            if change.unless_exists:
                what += f", skipped while {change.unless_exists} exists (first install only)"
            out.append(f"{change.step} ({change.file}): {what} [{change.category}]")
            continue
        out.append(f"{change.step} ({change.file}):")
        for f in change.fields:
            out.append(f"    {f.path}: {_short(f.old)} -> {_short(f.new)} [{f.category}]")
    return out


def main(deployment: str, from_rev: str, to_rev: str, repo: Path | None = None,
         allow_downgrade: bool = False) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    try:
        with console.status("rendering") as status:
            result = plan(deployment, from_rev, to_rev, repo=repo, progress=status.update,
                          allow_downgrade=allow_downgrade)
    except UpgradeError as exc:
        print(f"stacksalt upgrade plan: {exc}")
        return 2
    print(f"upgrade plan for {deployment}: {from_rev} -> {to_rev} "
          f"(built for {result.new.minion}, {result.new.objects_dir}), in apply order:")
    if result.downgrade:
        print(f"DOWNGRADE: {result.downgrade}")
    for line in lines(result):
        print(line)
    counts = result.counts()
    summary = ", ".join(f"{c} {counts[c]}" for c in CATEGORIES if counts[c]) or "nothing"
    print(f"{len(result.changes)} objects change ({summary}); {result.unchanged} unchanged")
    return 0
