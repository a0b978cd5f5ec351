"""A Kubernetes version bump in the model changes only what depends on the version.

The checkout's reclass/, formulas/ and pillar/ are copied to a temporary root, where
``kubernetes_version`` is bumped from 1.33.5 to 1.34.1 at cluster level; every node of
the deployment is rendered (``state.show_sls``) before and after, and the two renders
are compared structurally. The only differences allowed:

- the version itself wherever it appears (image tags ``:v1.33.5`` -> ``:v1.34.1``, binary
  URLs ``.../v1.33.5/bin/...``, version strings handed to templates and objects);
- the binaries' sha256 pins (the model's pins for the old version -> for the new one);
- the images kubeadm ties to the minor version (pause, coredns: the formula's table).

Anything else (a state added or removed, a flag, an address, a list that grows) is an
unexpected difference and is printed by minion, state ID and path. Templates get their
data only through ``context:`` (checked below), so the diff of the states covers what
the templates render.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacksalt import paths, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect
from tests.conftest import deployments

pytestmark = pytest.mark.fast

OLD, NEW = "1.33.5", "1.34.1"
MINOR = {OLD: "1.33", NEW: "1.34"}
HEX64 = re.compile(r"^(sha256=)?[0-9a-f]{64}$")
VERSION_LINE = re.compile(r"^(\s*kubernetes_version:\s*)(['\"]?)" + re.escape(OLD) + r"\2\s*$",
                          re.MULTILINE)


# -- the structural diff --------------------------------------------------------------------


class Translation:
    """What a value of the old render must become in the new one."""

    def __init__(self, checksums: dict[str, str], image_tags: dict[str, tuple[str, str]]):
        self.checksums = checksums  # old sha256 -> new sha256
        self.images = [
            (re.compile(rf"(/{re.escape(name)}):{re.escape(old)}(?![\w.])"), rf"\1:{new}")
            for name, (old, new) in image_tags.items() if old != new
        ]
        self.minor = re.compile(rf"(?<![\w.]){re.escape(MINOR[OLD])}(?![\w.])")

    def __call__(self, value: str) -> tuple[str, str]:
        """(translated value, category of the change, "" if none)."""
        match = HEX64.match(value)
        if match and value.removeprefix("sha256=") in self.checksums:
            return (match.group(1) or "") + self.checksums[value.removeprefix("sha256=")], \
                "checksum"
        new = value.replace(OLD, NEW)
        for pattern, repl in self.images:
            new = pattern.sub(repl, new)
        new = self.minor.sub(MINOR[NEW], new)
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


def bump(root: Path, deployment: str) -> Path:
    """Bump kubernetes_version in the one cluster file that defines it; that file."""
    cluster = paths.reclass_dir(root) / "classes" / "cluster" / deployment
    files = [f for f in sorted(cluster.rglob("*.yml")) if VERSION_LINE.search(f.read_text())]
    assert len(files) == 1, f"kubernetes_version {OLD} must be set once under {cluster}: {files}"
    text, count = VERSION_LINE.subn(rf'\g<1>"{NEW}"', files[0].read_text())
    assert count == 1
    files[0].write_text(text)
    assert yaml.safe_load(text)["parameters"]["_param"]["kubernetes_version"] == NEW
    return files[0]


def translation(deployment: str, root: Path) -> Translation:
    """The checksum pairs of the model and the image table of the formula."""
    dep = Deployment.load(deployment, paths.reclass_dir(root))
    pairs: dict[str, str] = {}
    for node in dep.node_names:
        binaries = dep.parameters(node).get("kubernetes", {}).get("common", {}).get("binaries")
        table = (binaries or {}).get("checksums") or {}
        for arch, pins in (table.get(OLD) or {}).items():
            for name, old in pins.items():
                new = table.get(NEW, {}).get(arch, {}).get(name)
                if new:
                    pairs[old] = new
    defaults = yaml.safe_load((paths.formulas_dir(root) / "kubernetes" / "defaults.yaml")
                              .read_text())
    images = defaults["common"]["images"]
    old_images, new_images = images[MINOR[OLD]], images[MINOR[NEW]]
    tags = {name: (str(old_images[name]), str(new_images.get(name, old_images[name])))
            for name in old_images}
    return Translation(pairs, tags)


@pytest.fixture(scope="module")
def bumped(tmp_path_factory):
    root = tmp_path_factory.mktemp("bump")
    for part in ("reclass", "formulas", "pillar"):
        shutil.copytree(paths.repo_root() / part, root / part)
    return root


@pytest.mark.parametrize("deployment", deployments())
def test_version_bump_changes_only_versions(deployment, bumped):
    secrets.generate(deployment)
    before = collect.rendered(deployment)  # the checkout, as it is
    bump(bumped, deployment)
    after = collect.render(deployment, bumped)
    seen: Counter = Counter()
    unexpected = diff_renders(before, after, translation(deployment, bumped), seen)
    assert not unexpected, (
        f"{len(unexpected)} unexpected differences after {OLD} -> {NEW} "
        f"(expected ones: {dict(seen)}):\n" + "\n".join(unexpected[:200]))
    # the bump reached the images (and the binaries where they are installed)
    assert seen["image"] > 0, seen
    install = any(
        Deployment.load(deployment).parameters(n).get("kubernetes", {}).get("common", {})
        .get("binaries", {}).get("install") for n in before)
    assert (seen["url"] > 0 and seen["checksum"] > 0) == install, seen


def test_templates_take_their_data_from_context():
    """So that the states' diff covers what templates render (no pillar lookups)."""
    readers = [str(f.relative_to(paths.repo_root()))
               for f in sorted(paths.formulas_dir().glob("*/files/**/*"))
               if f.is_file() and re.search(r"\bpillar\b", f.read_text(errors="ignore"))]
    assert not readers, f"templates reading the pillar: {readers}"


# -- the diff helper itself -----------------------------------------------------------------


def test_diff_reports_unexpected_changes_by_state_and_path():
    translate = Translation({"a" * 64: "b" * 64}, {"pause": ("3.10", "3.10.1")})
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
