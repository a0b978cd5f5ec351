"""kubernetes.master.objects applied for real by Salt on this host (salt-call --local
with mst01's real pillar), into a temporary objects dir: no Docker, nothing outside it.

The first run writes every object and the plan with their modes (the Secret 0600 in a
0700 directory); a second run changes nothing; a file no longer rendered (an earlier
release's Job, a disabled role's directory) is removed; a damaged Secret is restored,
and no state output of any run contains a secret value, plain or base64.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
import yaml

from stacksalt import saltrender, secrets

pytestmark = pytest.mark.fast

MINION, DEPLOYMENT = "mst01.lab.local", "lab"
SLS = "kubernetes.master.objects"


def run(top: Path) -> dict[str, dict]:
    """state.apply of the objects into ``top``: {state id: result}; every state passed."""
    pillar = json.dumps({"kubernetes": {"master": {"objects": {"dir": str(top)}}}})
    out = saltrender.salt_call(MINION, DEPLOYMENT, "state.apply", SLS, f"pillar={pillar}")
    results = {key.split("_|-")[1]: value for key, value in out.items()}
    failed = [k for k, v in results.items() if not v["result"]]
    assert not failed, failed
    return results


def changed(results: dict[str, dict]) -> dict[str, dict]:
    return {k: v["changes"] for k, v in results.items() if v.get("changes")}


@pytest.fixture(scope="module")
def values() -> list[str]:
    secrets.generate(DEPLOYMENT)
    plain = list(secrets.decrypt_all(DEPLOYMENT).values())
    return plain + [base64.b64encode(v.encode()).decode() for v in plain]


def leaks(results: dict[str, dict], values: list[str]) -> int:
    text = json.dumps(results)
    return sum(1 for v in values if v in text)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))[2:]


def test_apply_write_rerun_clean_and_restore(tmp_path, values):
    top = tmp_path / "objects"
    first = run(top)
    assert leaks(first, values) == 0
    assert len(changed(first)) == len(first) - 1  # all but the clean-up
    files = sorted(p for p in top.rglob("*") if p.is_file())
    assert len(files) > 60
    assert {p.relative_to(top).parts[0] for p in files} == {
        "apply-plan.yaml", "kubernetes", "calico", "coredns", "openstack"}
    secret_dir = top / "openstack" / "00-secret"
    assert mode(top) == "755" and mode(secret_dir) == "700"
    for path in files:
        assert mode(path) == ("600" if path.parent == secret_dir else "644"), path
        assert yaml.safe_load(path.read_text())  # YAML, not empty
    others = [p for p in files if p.parent != secret_dir]
    assert sum(1 for p in others for v in values if v in p.read_text()) == 0, \
        "a file other than the Secret contains a secret value"
    plan = yaml.safe_load((top / "apply-plan.yaml").read_text())
    assert sorted(str(top / s["file"]) for s in plan["steps"]) == sorted(
        str(p) for p in files if p.name != "apply-plan.yaml")

    assert changed(run(top)) == {}, "a second run changes something"

    stale = top / "openstack" / "30-glance-api" / "job-glance-api-contract-epoxy.yaml"
    stale.write_text("kind: Job\n")
    gone = top / "openstack" / "50-retired"
    gone.mkdir()
    (gone / "deployment-retired.yaml").write_text("kind: Deployment\n")
    results = run(top)
    assert list(changed(results)) == ["kubernetes-master-objects-stale-files-removed"]
    assert not stale.exists() and not gone.exists()
    assert all(p.exists() for p in files)

    secret = next(secret_dir.glob("secret-*.yaml"))
    content = secret.read_bytes()
    secret.write_text("")
    secret.chmod(0o644)
    results = run(top)
    state_id = f"kubernetes-master-object-openstack-00-secret-{secret.stem}-managed"
    assert list(changed(results)) == [state_id]
    assert changed(results)[state_id] == {
        "diff": "<show_changes=False>", "mode": "0600"}
    assert leaks(results, values) == 0
    same = secret.read_bytes() == content
    assert same and mode(secret) == "600"
