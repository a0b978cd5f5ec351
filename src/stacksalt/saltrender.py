"""Render formulas for a node on this host, with the node's real pillar (no minion needed).

Runs the venv's `salt-call --local` with a throwaway config whose file_roots, pillar_roots
and reclass ext_pillar point at this checkout, so `state.show_sls` sees exactly the
pillar the salt master would give that minion (secrets decrypted with the deployment's
local keyring).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from stacksalt import engine, paths, secrets
from stacksalt.errors import StacksaltError


class RenderError(StacksaltError):
    pass


def _config(root: Path, workdir: Path, minion_id: str | None, deployment: str,
            grains: dict[str, Any] | None = None) -> Path:
    cfg = workdir / "etc"
    cfg.mkdir(parents=True, exist_ok=True)
    run = workdir / "run"
    conf = {
        "file_client": "local",
        "root_dir": str(run),
        "pki_dir": str(run / "pki"),
        "cachedir": str(run / "cache"),
        "sock_dir": str(run / "sock"),
        "log_file": str(run / "minion.log"),
        "file_roots": {"base": [str(paths.formulas_dir(root))]},
        **engine.pillar_options(paths.formulas_dir(root), root / "pillar", root / "reclass"),
        "gpg_keydir": str(secrets.keyring_dir(deployment)),
        "pillar_raise_on_missing": False,
        # the custom modules straight from the checkout (a minion gets them synced; a
        # local render has no sync): the objects builder, the apply state
        "module_dirs": [str(paths.formulas_dir(root) / "_modules")],
        "states_dirs": [str(paths.formulas_dir(root) / "_states")],
    }
    if minion_id:
        conf["id"] = minion_id
    if grains:
        # static grains, over the ones Salt detects on this host (a test renders a node
        # as if on another machine)
        conf["grains"] = grains
    (cfg / "minion").write_text(yaml.safe_dump(conf))
    return cfg


def salt_call(minion_id: str, deployment: str, *args: str, root: Path | None = None,
              grains: dict[str, Any] | None = None) -> Any:
    """`salt-call --local <args>` for minion_id (with ``grains`` over the detected ones);
    returns the 'local' part of the JSON."""
    root = root or paths.deployment_root(deployment)
    salt_call_bin = Path(sys.executable).with_name("salt-call")
    with tempfile.TemporaryDirectory(prefix="stacksalt-render-") as tmp:
        cfg = _config(root, Path(tmp), minion_id, deployment, grains)
        proc = subprocess.run(
            [str(salt_call_bin), "--local", "-c", str(cfg), "--out=json",
             "--retcode-passthrough", *args],
            capture_output=True, text=True,
        )
    start = proc.stdout.find("{")
    try:
        data = json.loads(proc.stdout[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        data = None
    if proc.returncode != 0 or data is None:
        raise RenderError(
            f"{minion_id}: salt-call {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return data.get("local")


def show_sls_many(deployment: str, jobs: dict[str, list[str]], root: Path | None = None,
                  workers: int = 2, function: str = "state.show_sls",
                  kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """show_sls for many minions: {minion: states}; RenderError naming every failed node.

    The minions are split over `workers` processes, each rendering its share in one Salt
    process (stacksalt.render_worker)."""
    root = root or paths.deployment_root(deployment)
    ids = sorted(jobs)
    shares = [ids[i::workers] for i in range(workers) if ids[i::workers]]
    with tempfile.TemporaryDirectory(prefix="stacksalt-render-") as tmp:
        cfg = _config(root, Path(tmp), None, deployment)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "stacksalt.render_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )
            for _ in shares
        ]
        outputs = [
            proc.communicate(json.dumps({"config_dir": str(cfg), "function": function,
                                         "kwargs": kwargs or {},
                                         "jobs": {m: jobs[m] for m in share}}))
            for proc, share in zip(procs, shares, strict=True)
        ]
    results: dict[str, Any] = {}
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RenderError(f"the render worker failed (exit {proc.returncode}):\n{err[-3000:]}")
        results.update(json.loads(out))
    failed = {m: r for m, r in results.items() if isinstance(r, list)}
    if failed:
        raise RenderError("\n".join(
            f"{m}: rendering {','.join(jobs[m])} failed:\n" + "\n".join(map(str, r))
            for m, r in sorted(failed.items())))
    return results


def pillars(deployment: str, minions: list[str], root: Path | None = None,
            workers: int = 2) -> dict[str, dict[str, Any]]:
    """{minion: pillar} as the master compiles it (reclass, then the secrets ext_pillar),
    values unmasked (Salt masks pillar output by default)."""
    return show_sls_many(deployment, {m: [] for m in minions}, root=root, workers=workers,
                         function="pillar.items", kwargs={"unmask": True})


def show_sls(minion_id: str, deployment: str, sls: list[str], root: Path | None = None):
    """The low-level highstate data of `sls` for this minion, or RenderError."""
    return show_sls_many(deployment, {minion_id: sls}, root=root, workers=1)[minion_id]
