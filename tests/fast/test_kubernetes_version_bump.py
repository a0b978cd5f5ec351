"""A version bump in the model changes only what depends on the version.

The checkout's reclass/, formulas/ and pillar/ are copied to a temporary root, where the
deployment's versions are bumped at cluster level from whatever they are to another
version the model pins (the next pinned one, or the latest older one when the deployment
is on the newest): ``kubernetes_version``, and, as one "runtime" bump,
``containerd_version`` and ``etcd_version``. Every node of the deployment is rendered
(``state.show_sls``) before and after, and the two renders are compared structurally.
The only differences allowed:

- the version itself wherever it appears (image tags ``:v1.33.5`` -> ``:v1.34.1``, binary
  and archive URLs ``.../v1.33.5/bin/...``, version strings handed to templates and
  objects);
- the pinned sha256 sums (the model's pins for the old version -> for the new one);
- for Kubernetes, the images kubeadm ties to the minor version (pause, coredns: the
  formula's table).

Anything else (a state added or removed, a flag, an address, a list that grows) is an
unexpected difference and is printed by minion, state ID and path; a bump that also
changes something else is shown to fail. Templates get their data only through
``context:`` (checked below), so the diff of the states covers what the templates render.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacksalt import paths, saltrender, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect
from tests.conftest import deployments
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast

HEX64 = re.compile(r"^(sha256=)?[0-9a-f]{64}$")
# bump name -> the (version parameter, its checksums parameter) it bumps together
BUMPS = {
    "kubernetes": [("kubernetes_version", "kubernetes_checksums")],
    "runtime": [("containerd_version", "containerd_checksums"),
                ("etcd_version", "etcd_checksums")],
}


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def pick_target(current: str, pinned: list[str], allowed=lambda v: True) -> str | None:
    """Another pinned version: the next newer one, else the newest older one."""
    others = sorted((v for v in pinned if v != current and allowed(v)), key=version_key)
    newer = [v for v in others if version_key(v) > version_key(current)]
    return (newer or others[::-1] or [None])[0]


# -- the structural diff --------------------------------------------------------------------


class Translation:
    """What a value of the old render must become in the new one."""

    def __init__(self, versions: dict[str, str], checksums: dict[str, str],
                 image_tags: dict[str, tuple[str, str]] | None = None,
                 minors: tuple[str, str] | None = None):
        self.versions = versions  # old version -> new version
        self.checksums = checksums  # old sha256 -> new sha256
        self.images = [
            (re.compile(rf"(/{re.escape(name)}):{re.escape(old)}(?![\w.])"), rf"\1:{new}")
            for name, (old, new) in (image_tags or {}).items() if old != new
        ]
        self.minor = None
        if minors and minors[0] != minors[1]:
            self.minor = (re.compile(rf"(?<![\w.]){re.escape(minors[0])}(?![\w.])"), minors[1])
        self.version = re.compile("|".join(
            rf"(?<![\d.]){re.escape(v)}(?!\d)" for v in sorted(versions, key=len, reverse=True)))

    def __call__(self, value: str) -> tuple[str, str]:
        """(translated value, category of the change, "" if none)."""
        match = HEX64.match(value)
        if match and value.removeprefix("sha256=") in self.checksums:
            return (match.group(1) or "") + self.checksums[value.removeprefix("sha256=")], \
                "checksum"
        new = self.version.sub(lambda m: self.versions[m.group(0)], value) \
            if self.versions else value
        for pattern, repl in self.images:
            new = pattern.sub(repl, new)
        if self.minor:
            new = self.minor[0].sub(self.minor[1], new)
        if new == value:
            return value, ""
        if "://" in value:
            return new, "url"
        if re.search(r"[\w.-]+(/[\w.-]+)+:[\w.-]+$", value):
            return new, "image"
        return new, "version"


Difference = tuple[tuple[str, ...], str]  # (path, what changed)


def diff(before: Any, after: Any, translate: Translation, path: tuple[str, ...] = (),
         seen: Counter | None = None) -> list[Difference]:
    """Unexpected differences between two renders; ``seen`` counts the expected ones."""
    seen = Counter() if seen is None else seen
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[Difference] = []
        paired = set()
        for key in before:
            other = key
            if key not in after and isinstance(key, str):
                other = translate(key)[0]
                if other in before:  # both keys exist before: no renaming
                    other = key
            if other in after:
                paired.add(other)
                out += diff(before[key], after[other], translate, (*path, str(key)), seen)
            else:
                out.append(((*path, str(key)), "removed"))
        out += [((*path, str(key)), "added") for key in after if key not in paired]
        return out
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [(path, f"{len(before)} items -> {len(after)} items")]
        return [d for i, (b, a) in enumerate(zip(before, after, strict=True))
                for d in diff(b, a, translate, (*path, str(i)), seen)]
    if before == after and type(before) is type(after):
        return []
    if isinstance(before, str) and isinstance(after, str):
        expected, category = translate(before)
        if category and expected == after:
            seen[category] += 1
            return []
    return [(path, f"{before!r} -> {after!r}")]


def diff_renders(before: collect.Rendered, after: collect.Rendered, translate: Translation,
                 seen: Counter) -> list[str]:
    """Unexpected differences, one line each: ``minion state-id: /path: what``."""
    lines = []
    for minion in sorted(set(before) | set(after)):
        if minion not in before or minion not in after:
            lines.append(f"{minion}: only in the {'new' if minion in after else 'old'} render")
            continue
        for path, what in diff(before[minion], after[minion], translate, (), seen):
            lines.append(f"{minion} {path[0]}: /{'/'.join(path[1:])}: {what}")
    return lines


# -- the test -------------------------------------------------------------------------------


def current_versions(deployment: str, root: Path | None = None) -> dict[str, str]:
    """{version parameter: the deployment's value} for every parameter of BUMPS it sets."""
    dep = Deployment.load(deployment, paths.reclass_dir(root) if root else None)
    found: dict[str, str] = {}
    for node in dep.node_names:
        param = dep.parameters(node).get("_param", {})
        for pairs in BUMPS.values():
            for name, _ in pairs:
                if name in param:
                    found.setdefault(name, str(param[name]))
    return found


def pins(deployment: str, checksums_param: str, root: Path | None = None) -> dict:
    """The model's checksum table of one parameter (the same on every node)."""
    dep = Deployment.load(deployment, paths.reclass_dir(root) if root else None)
    for node in dep.node_names:
        table = dep.parameters(node).get("_param", {}).get(checksums_param)
        if table:
            return table
    return {}


def image_table(root: Path) -> dict:
    return yaml.safe_load((paths.formulas_dir(root) / "kubernetes" / "defaults.yaml")
                          .read_text())["common"]["images"]


def plan(deployment: str, bump_name: str, root: Path) -> dict[str, tuple[str, str]]:
    """{version parameter: (current, target)} of one bump of the deployment."""
    current = current_versions(deployment, root)
    images = image_table(root)
    out = {}
    for name, checksums_param in BUMPS[bump_name]:
        if name not in current:
            continue
        allowed = (lambda v: minor(v) in images) if name == "kubernetes_version" else \
            (lambda v: True)
        target = pick_target(current[name], list(pins(deployment, checksums_param, root)),
                             allowed)
        if target:
            out[name] = (current[name], target)
    return out


def bump(root: Path, deployment: str, name: str, old: str, new: str) -> Path:
    """Set parameter ``name`` from ``old`` to ``new`` in the one cluster file that defines
    it; that file."""
    line = re.compile(rf"^(\s*{re.escape(name)}:\s*)(['\"]?){re.escape(old)}\2\s*$",
                      re.MULTILINE)
    cluster = paths.reclass_dir(root) / "classes" / "cluster" / deployment
    files = [f for f in sorted(cluster.rglob("*.yml")) if line.search(f.read_text())]
    assert len(files) == 1, f"{name} {old} must be set once under {cluster}: {files}"
    text, count = line.subn(rf'\g<1>"{new}"', files[0].read_text())
    assert count == 1
    files[0].write_text(text)
    assert yaml.safe_load(text)["parameters"]["_param"][name] == new
    return files[0]


def translation(deployment: str, root: Path, versions: dict[str, tuple[str, str]]) -> Translation:
    """The version pairs, the checksum pairs of the model and, for Kubernetes, the image
    table of the formula."""
    pairs: dict[str, str] = {}

    def walk(old: Any, new: Any) -> None:
        if isinstance(old, dict) and isinstance(new, dict):
            for key in old:
                if key in new:
                    walk(old[key], new[key])
        elif isinstance(old, str) and isinstance(new, str):
            pairs[old] = new

    checksums_of = {n: c for bumps in BUMPS.values() for n, c in bumps}
    for name, (old, new) in versions.items():
        table = pins(deployment, checksums_of[name], root)
        walk(table.get(old), table.get(new))
    tags, minors = {}, None
    if "kubernetes_version" in versions:
        old, new = versions["kubernetes_version"]
        images = image_table(root)
        old_images, new_images = images[minor(old)], images[minor(new)]
        tags = {name: (str(old_images[name]), str(new_images.get(name, old_images[name])))
                for name in old_images}
        minors = (minor(old), minor(new))
    return Translation({old: new for old, new in versions.values()}, pairs, tags, minors)


def copy_checkout(root: Path, deployment: str) -> Path:
    """A copy of the deployment's repository with its own copy of the formulas."""
    return copy_deployment(deployment, root / "repo", copy_product=("formulas",))


def installs(deployment: str, bump_name: str) -> bool:
    """Whether the deployment downloads what the bump changes (URLs and pins render)."""
    dep = Deployment.load(deployment)
    key = "kubernetes_binaries_install" if bump_name == "kubernetes" else \
        "upstream_archives_install"
    return any(dep.parameters(n).get("_param", {}).get(key) for n in dep.node_names)


@pytest.mark.parametrize("bump_name", sorted(BUMPS))
@pytest.mark.parametrize("deployment", deployments())
def test_version_bump_changes_only_versions(deployment, bump_name, tmp_path):
    secrets.generate(deployment)
    before = collect.rendered(deployment)  # the checkout, as it is
    root = copy_checkout(tmp_path, deployment)
    versions = plan(deployment, bump_name, root)
    assert versions, f"{deployment} pins no second version to bump to ({bump_name})"
    for name, (old, new) in versions.items():
        bump(root, deployment, name, old, new)
    after = collect.render(deployment, root)
    seen: Counter = Counter()
    unexpected = diff_renders(before, after, translation(deployment, root, versions), seen)
    assert not unexpected, (
        f"{len(unexpected)} unexpected differences after {versions} "
        f"(expected ones: {dict(seen)}):\n" + "\n".join(unexpected[:200]))
    if bump_name == "kubernetes":
        assert seen["image"] > 0, seen  # the bump reached the images
    # and the downloads where the deployment installs them
    assert (seen["url"] > 0 and seen["checksum"] > 0) == installs(deployment, bump_name), seen


@pytest.mark.parametrize(("bump_name", "sneak", "expected"), [
    # a bump that also changes the keepalived advertisement interval
    ("kubernetes", ("formulas/kubernetes/defaults.yaml", "    advert_int: 1\n",
                    "    advert_int: 2\n"),
     "kubernetes-master-keepalived-config-file-managed: /file/5/context/advert_int: 1 -> 2"),
    # a runtime bump that also installs one more CNI plugin
    ("runtime", ("formulas/kubernetes/defaults.yaml", "plugins: [bandwidth, bridge,",
                 "plugins: [vlan, bandwidth, bridge,"),
     "kubernetes-common-cni-plugins-installed: /stacksalt_archive/2/members/./vlan: added"),
])
def test_a_bump_that_changes_something_else_fails(bump_name, sneak, expected, tmp_path):
    """The check is not blind: the same bump plus one unrelated change is reported (one
    master of production, which installs everything)."""
    deployment, node = "production", "mst01.prod.local"
    secrets.generate(deployment)
    before = {node: collect.rendered(deployment)[node]}
    root = copy_checkout(tmp_path, deployment)
    versions = plan(deployment, bump_name, root)
    for name, (old, new) in versions.items():
        bump(root, deployment, name, old, new)
    path, old_text, new_text = sneak
    path = paths.product_of(root) / path
    text = path.read_text()
    assert old_text in text
    path.write_text(text.replace(old_text, new_text, 1))
    apps = Deployment.load(deployment).rendered[node]["applications"]
    after = {node: saltrender.show_sls_many(deployment, {node: apps}, root=root, workers=1)[node]}
    seen: Counter = Counter()
    unexpected = diff_renders(before, after, translation(deployment, root, versions), seen)
    assert unexpected == [f"{node} {expected}"], unexpected
    assert seen["url"] > 0 and seen["checksum"] > 0, seen


def test_target_is_another_pinned_version_whatever_the_current_one():
    pinned = ["1.33.5", "1.34.1"]
    assert pick_target("1.33.5", pinned) == "1.34.1"
    assert pick_target("1.34.1", pinned) == "1.33.5"  # already on the newest: go back
    assert pick_target("3.5.21", ["3.5.9", "3.5.21", "3.5.24"]) == "3.5.24"
    assert pick_target("1.33.5", ["1.33.5"]) is None


def test_bump_works_for_a_deployment_already_on_the_newer_version(tmp_path):
    """A deployment on 1.34.1 (and containerd 1.7.29) is bumped to the other pins."""
    root = copy_checkout(tmp_path, "lab")
    bump(root, "lab", "kubernetes_version", "1.33.5", "1.34.1")
    bump(root, "lab", "containerd_version", "1.7.28", "1.7.29")
    assert plan("lab", "kubernetes", root) == {"kubernetes_version": ("1.34.1", "1.33.5")}
    assert plan("lab", "runtime", root)["containerd_version"] == ("1.7.29", "1.7.28")
    bump(root, "lab", "kubernetes_version", "1.34.1", "1.33.5")
    assert current_versions("lab", root)["kubernetes_version"] == "1.33.5"
    t = translation("lab", root, {"kubernetes_version": ("1.34.1", "1.33.5")})
    assert t("registry.k8s.io/pause:3.10.1") == ("registry.k8s.io/pause:3.10", "image")
    assert t("https://dl.k8s.io/release/v1.34.1/bin/linux/amd64/kubelet")[1] == "url"


def test_templates_take_their_data_from_context():
    """So that the states' diff covers what templates render (no pillar lookups)."""
    readers = [str(f.relative_to(paths.repo_root()))
               for f in sorted(paths.formulas_dir().glob("*/files/**/*"))
               if f.is_file() and re.search(r"\bpillar\b", f.read_text(errors="ignore"))]
    assert not readers, f"templates reading the pillar: {readers}"


# -- the diff helper itself -----------------------------------------------------------------


def test_diff_reports_unexpected_changes_by_state_and_path():
    OLD, NEW = "1.33.5", "1.34.1"  # noqa: N806
    translate = Translation({OLD: NEW}, {"a" * 64: "b" * 64}, {"pause": ("3.10", "3.10.1")},
                            ("1.33", "1.34"))
    before = {"n1": {
        "kube-apiserver-manifest": {"file": [{"dataset": {"spec": {"containers": [
            {"image": f"registry.k8s.io/kube-apiserver:v{OLD}", "args": ["--v=2"]}]}}}]},
        "kubelet-binary": {"file": [{"source": f"https://dl.k8s.io/release/v{OLD}/bin/kubelet"},
                                    {"source_hash": "sha256=" + "a" * 64}]},
        "sandbox": {"file": [{"context": {"image": "registry.k8s.io/pause:3.10",
                                          "version": OLD}}]},
        "gone": {"cmd": ["run"]},
    }}
    after = {"n1": {
        "kube-apiserver-manifest": {"file": [{"dataset": {"spec": {"containers": [
            {"image": f"registry.k8s.io/kube-apiserver:v{NEW}", "args": ["--v=4"]}]}}}]},
        "kubelet-binary": {"file": [{"source": f"https://dl.k8s.io/release/v{NEW}/bin/kubelet"},
                                    {"source_hash": "sha256=" + "b" * 64}]},
        "sandbox": {"file": [{"context": {"image": "registry.k8s.io/pause:3.10.1",
                                          "version": NEW}}]},
    }}
    seen: Counter = Counter()
    assert diff_renders(before, after, translate, seen) == [
        "n1 kube-apiserver-manifest: /file/0/dataset/spec/containers/0/args/0: "
        "'--v=2' -> '--v=4'",
        "n1 gone: /: removed",
    ]
    assert seen == {"image": 2, "url": 1, "checksum": 1, "version": 1}
