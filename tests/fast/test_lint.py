"""Lint: ruff for Python, yamllint and salt-lint for YAML/SLS, shellcheck for shell."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacksalt import paths

pytestmark = pytest.mark.fast

ROOT = paths.repo_root()
BIN = Path(sys.executable).parent


def run(argv: list[str]) -> None:
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(argv[:2])} found problems:\n{proc.stdout}{proc.stderr}"


def tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [f for f in out if (ROOT / f).exists()]


def test_ruff():
    run([str(BIN / "ruff"), "check", "src", "tests", "benchmarks", "formulas"])


def test_yamllint():
    run([str(BIN / "yamllint"), "--strict", "-c", ".yamllint", "reclass", "tests/broken_models",
         *tracked("*.yaml", "*.yml")])


def test_salt_lint():
    files = tracked("formulas/*.sls")
    assert len(files) > 10
    run([str(BIN / "salt-lint"), *files])


def test_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: ci/setup installs it"
    files = [f for f in tracked("ci/*", ".ci/*", "*.sh")
             if (ROOT / f).read_text(errors="ignore").startswith("#!/usr/bin/env bash")]
    assert files
    run([shellcheck, *files])
