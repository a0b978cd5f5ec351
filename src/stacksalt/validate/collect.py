"""Collect the Kubernetes and Calico objects a deployment's states would write.

Formulas write every object with ``file.serialize`` (``dataset:`` = the object), the
static pods with ``stacksalt_static_pod.manifest`` (the same ``dataset:``, plus a
fingerprint annotation made when the state runs), so the objects are plain data in
``state.show_sls``: nothing is executed, no node is needed.
Every node's applications are rendered on this host with the node's real pillar
(``stacksalt.saltrender``); the deployment's secrets must exist
(``stacksalt secrets generate <deployment>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from stacksalt import paths, saltrender
from stacksalt.deployment import Deployment

Rendered = dict[str, dict[str, Any]]  # {minion: show_sls output (state id -> state)}
# the states that write a dataset as a file
SERIALIZERS = ("file.serialize", "stacksalt_static_pod.manifest")


def render(deployment: str, root: Path | None = None) -> Rendered:
    """``state.show_sls`` of every node's applications, {minion: states}."""
    dep = Deployment.load(deployment, paths.reclass_dir(root) if root else None)
    jobs = {n: dep.rendered[n]["applications"] for n in dep.node_names}
    out = saltrender.show_sls_many(deployment, {n: a for n, a in jobs.items() if a}, root=root)
    return {n: out.get(n, {}) for n in dep.node_names}


@cache
def rendered(deployment: str) -> Rendered:
    """``render`` of the checkout, once per process (the checkout does not change under
    a test run; renders of other roots are never cached)."""
    return render(deployment)


def state_calls(state: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``module.function``, merged arguments) for each call of one rendered state ID."""
    for key, args in state.items():
        if key.startswith("__") or not isinstance(args, list):
            continue
        module, _, function = key.partition(".")
        kwargs: dict[str, Any] = {}
        for arg in args:
            if isinstance(arg, str) and not function:
                function = arg
            elif isinstance(arg, dict):
                kwargs.update(arg)
        yield f"{module}.{function}", kwargs


def serialized(states: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(state id, file path, dataset) for every ``file.serialize`` (and static pod
    manifest) of one node's states."""
    for state_id, state in sorted(states.items()):
        if not isinstance(state, dict):
            continue
        for call, kwargs in state_calls(state):
            if call in SERIALIZERS and "dataset" in kwargs:
                yield state_id, str(kwargs.get("name", state_id)), kwargs["dataset"]


def is_object(data: Any) -> bool:
    """A Kubernetes-style object: a mapping with apiVersion and kind."""
    return isinstance(data, dict) and "apiVersion" in data and "kind" in data


# What a Secret's values become in collected objects: valid base64 (b"redacted"), so the
# object still passes its schema, and no secret value reaches a test's output.
REDACTED_B64 = "cmVkYWN0ZWQ="
REDACTED = "redacted"


def redacted(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with every value of a Secret's ``data``/``stringData`` replaced (keys kept)."""
    if obj.get("kind") != "Secret" or obj.get("apiVersion") != "v1":
        return obj
    out = dict(obj)
    for field, value in (("data", REDACTED_B64), ("stringData", REDACTED)):
        if isinstance(obj.get(field), dict):
            out[field] = {key: value for key in obj[field]}
    return out


def objects_in(rendered: Rendered) -> list[tuple[str, str, dict[str, Any]]]:
    """(minion, path, object) for every serialized object of the rendered nodes; Secrets
    with their values redacted (``serialized`` gives the real data)."""
    return [
        (minion, path, redacted(data))
        for minion in sorted(rendered)
        for _, path, data in serialized(rendered[minion])
        if is_object(data)
    ]


def objects(deployment: str, root: Path | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(minion, path, object) for every object the deployment's states write."""
    return objects_in(rendered(deployment) if root is None else render(deployment, root))
