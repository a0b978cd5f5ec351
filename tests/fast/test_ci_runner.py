"""The master's side of the pipeline (formulas/_runners/stacksalt_ci.py), on real git
repositories: the checkout moves atomically, under one lock, only to a revision whose tree
exports whole, and follows a force-push back without exporting again."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from stacksalt import saltmodules

pytestmark = pytest.mark.fast

ci = saltmodules.load("_runners/stacksalt_ci.py")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), "-c", "user.name=t", "-c",
                           "user.email=t@invalid", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str, pin: str | None = None) -> str:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    if pin:
        git(repo, "update-index", "--add", "--cacheinfo", f"160000,{pin},stacksalt")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def world(tmp_path):
    """A product repository, a deployment repository pinning it, the master's dirs."""
    product = tmp_path / "product"
    product.mkdir()
    git(product, "init", "-q", "-b", "main")
    p1 = commit(product, {"formulas/top.sls": "base: {}\n",
                          "reclass/classes/service/a/init.yml": "parameters: {a: 1}\n",
                          "images/README.md": "images\n"}, "product 1")
    dep = tmp_path / "mysite"
    dep.mkdir()
    git(dep, "init", "-q", "-b", "main")
    (dep / "reclass" / "classes").mkdir(parents=True)
    (dep / "reclass" / "classes" / "service").symlink_to("../../stacksalt/reclass/classes/service")
    r1 = commit(dep, {"stacksalt.yml": "deployment: mysite\n",
                      "reclass/nodes/mysite/n1.yml": "classes: [service.a]\n",
                      "pillar/top.sls": "base: {}\n"}, "one", pin=p1)
    r2 = commit(dep, {"reclass/nodes/mysite/n1.yml": "classes: [service.a]\n# two\n"}, "two",
                pin=p1)
    bare = {}
    for name, repo in (("product", product), ("mysite", dep)):
        bare[name] = tmp_path / "git" / f"{name}.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare[name])], check=True)
    return {"base": tmp_path / "srv" / "stacksalt", "ci": tmp_path / "srv" / "ci",
            "git": bare["mysite"], "product_git": bare["product"], "r1": r1, "r2": r2,
            "dep": dep, "p1": p1, "tmp": tmp_path}


def move(w, rev):
    return ci.move_to(rev, w["base"], w["ci"], w["git"], w["product_git"])


def test_moves_to_a_revision_with_its_pinned_product(world):
    w = world
    w["base"].parent.mkdir(parents=True)
    assert move(w, w["r1"]) == {"previous": None, "revision": w["r1"], "changed": True}
    assert w["base"].is_symlink()
    assert (w["base"] / "stacksalt" / "formulas" / "top.sls").is_file()
    # the deployment's symlink into the product resolves inside the exported tree
    assert (w["base"] / "reclass" / "classes" / "service" / "a" / "init.yml").is_file()
    out = move(w, w["r2"])
    assert out["previous"] == w["r1"] and out["changed"]
    assert "# two" in (w["base"] / "reclass/nodes/mysite/n1.yml").read_text()
    assert ci.current(w["base"], w["ci"])["revision"] == w["r2"]
    mode = stat.S_IMODE((w["ci"] / "revisions" / w["r2"]).stat().st_mode)
    assert mode & 0o007 == 0  # the model and the encrypted secrets: not world-readable


def test_a_force_push_back_follows_without_exporting_again(world):
    w = world
    w["base"].parent.mkdir(parents=True)
    move(w, w["r1"])
    first = (w["ci"] / "revisions" / w["r1"] / "stacksalt.yml").stat().st_ino
    move(w, w["r2"])
    out = move(w, w["r1"])
    assert out == {"previous": w["r2"], "revision": w["r1"], "changed": True}
    assert (w["ci"] / "revisions" / w["r1"] / "stacksalt.yml").stat().st_ino == first
    assert [h["to"] for h in ci.current(w["base"], w["ci"])["history"]] == \
        [w["r1"], w["r2"], w["r1"]]


def test_a_revision_that_does_not_export_leaves_the_master_where_it_was(world):
    w = world
    w["base"].parent.mkdir(parents=True)
    move(w, w["r1"])
    bad = commit(w["dep"], {"pillar/x.sls": "x: 1\n"}, "pins a product commit nobody pushed",
                 pin="1" * 40)
    subprocess.run(["git", "-C", str(w["dep"]), "push", "-q", str(w["git"]), "main"],
                   check=True)
    with pytest.raises(ci.CiError, match="is not in .*push it there first"):
        move(w, bad)
    assert ci.current(w["base"], w["ci"])["revision"] == w["r1"]
    assert sorted(p.name for p in (w["ci"] / "revisions").iterdir()) == [w["r1"]]
    with pytest.raises(ci.CiError, match="full 40-hex"):
        move(w, "main")


def test_a_real_directory_is_not_taken_over(world):
    w = world
    w["base"].mkdir(parents=True)
    with pytest.raises(ci.CiError, match="is a real directory"):
        move(w, w["r1"])


def _move_in_child(w, rev, done):
    ci.move_to(rev, w["base"], w["ci"], w["git"], w["product_git"])
    done.put(time.monotonic())


def test_two_writers_never_overlap(world):
    """A second pipeline waits for the lock the first holds, then moves."""
    w = world
    w["base"].parent.mkdir(parents=True)
    move(w, w["r1"])
    done = multiprocessing.Queue()
    with ci.locked(w["ci"]):
        child = multiprocessing.Process(target=_move_in_child, args=(w, w["r2"], done))
        child.start()
        time.sleep(1.5)
        assert done.empty() and ci.current(w["base"], w["ci"])["revision"] == w["r1"]
        released = time.monotonic()
    child.join(30)
    assert child.exitcode == 0
    assert done.get(timeout=5) >= released
    assert ci.current(w["base"], w["ci"])["revision"] == w["r2"]


def test_readers_see_one_whole_tree_during_moves(world):
    """While the checkout flips between two revisions, a reader always finds a complete
    tree (both files of one revision), never a missing file."""
    w = world
    w["base"].parent.mkdir(parents=True)
    move(w, w["r1"])
    move(w, w["r2"])
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                node = (w["base"] / "reclass/nodes/mysite/n1.yml").read_text()
                (w["base"] / "stacksalt/formulas/top.sls").read_text()
                seen.append("# two" in node)
            except OSError as exc:
                seen.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(40):
        move(w, (w["r1"], w["r2"])[i % 2])
    stop.set()
    t.join()
    assert [s for s in seen if isinstance(s, Exception)] == []
    assert True in seen and False in seen  # it did see both revisions


def test_the_report_is_kept_unreadable_to_others(tmp_path):
    out = ci.keep_report(tmp_path, {"revision": "a" * 40, "text": "2 images built"})
    for path in out.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert Path(out["txt"]).read_text() == "2 images built\n"
    assert (tmp_path / "reports" / "latest.json").resolve() == Path(out["json"])
    with pytest.raises(ci.CiError):
        ci.keep_report(tmp_path, {"revision": "../../etc/passwd"})


# -- the master's configuration, from the model ---------------------------------------------


def _master_dataset(root: Path) -> dict:
    from stacksalt import saltrender

    states = saltrender.show_sls("cfg01.lab.local", "lab", ["salt.master"], root=root)
    state = states["salt-master-config-file-managed"]
    return next(d["dataset"] for d in state["file"] if isinstance(d, dict) and "dataset" in d)


def _lab_copy(tmp_path: Path, params: str = "", ci_class: bool = True) -> Path:
    """A copy of the lab (its cfg01 has system.salt.master.ci), with ``params`` added to
    cfg01's _param, or without the class."""
    from tests.trees import copy_deployment

    root = copy_deployment("lab", tmp_path / ("repo" if ci_class else "plain"))
    config = root / "reclass" / "classes" / "cluster" / "lab" / "infra" / "config.yml"
    text = config.read_text()
    assert "  - system.salt.master.ci\n" in text
    if not ci_class:
        text = text.replace("  - system.salt.master.ci\n", "")
    config.write_text(text.replace("  _param:\n", "  _param:\n" + params, 1))
    return root


def test_the_master_config_names_what_the_runner_reads(tmp_path, lab_secrets, monkeypatch):
    """system.salt.master.ci renders stacksalt_ci into the master's config, and the runner's
    _config takes it; without the class there is no stacksalt_ci, and the runner refuses
    that."""
    conf = _master_dataset(_lab_copy(tmp_path))["stacksalt_ci"]
    assert conf == {"base_dir": "/srv/stacksalt", "ci_dir": "/srv/stacksalt-ci",
                    "git_dir": "/srv/git/lab.git", "product_git_dir": "/srv/git/stacksalt.git",
                    "keep": 5}
    monkeypatch.setattr(ci, "__opts__", {"stacksalt_ci": conf}, raising=False)
    assert ci._config() == conf

    # negative control: without the class no stacksalt_ci is rendered; the runner says so
    plain = _master_dataset(_lab_copy(tmp_path, ci_class=False))
    assert "stacksalt_ci" not in plain
    monkeypatch.setattr(ci, "__opts__", plain, raising=False)
    with pytest.raises(ci.CiError, match="base_dir, ci_dir, git_dir, product_git_dir not set"):
        ci._config()


def test_an_unset_ci_path_is_a_render_error_naming_the_key(tmp_path, lab_secrets):
    from stacksalt import saltrender

    root = _lab_copy(tmp_path, "    salt_master_ci_product_git_dir: ''\n")
    with pytest.raises(saltrender.RenderError, match=r"salt:master:ci: product_git_dir not set"):
        _master_dataset(root)


def test_a_checkout_the_pipeline_did_not_deploy_is_no_revision(world):
    """`lab up` points the base dir at the mounted checkout: status names no revision, and
    the first move records it came from none."""
    w = world
    w["base"].parent.mkdir(parents=True)
    w["base"].symlink_to(w["dep"])
    assert ci.current(w["base"], w["ci"])["revision"] is None
    assert move(w, w["r1"])["previous"] is None
    assert ci.current(w["base"], w["ci"])["revision"] == w["r1"]


@pytest.mark.parametrize("filtered", [True, False], ids=["data-filter", "python-3.11.2"])
def test_an_export_never_lands_outside_its_tree(world, monkeypatch, filtered):
    """Debian 12's Python (3.11.2, the master's) has no tarfile filter: the runner checks
    the members itself. A real export works either way; a member or a link leading out of
    the tree is refused, and nothing is written outside."""
    import io
    import tarfile

    w = world
    if not filtered:
        monkeypatch.delattr(ci.tarfile, "data_filter", raising=False)
    w["base"].parent.mkdir(parents=True)
    move(w, w["r1"])
    assert (w["base"] / "reclass" / "classes" / "service" / "a" / "init.yml").is_file()
    for name, kind, link in (("../escaped", tarfile.REGTYPE, ""),
                             ("reclass/out", tarfile.SYMTYPE, "../../../escaped"),
                             ("abs", tarfile.SYMTYPE, "/etc/passwd")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info, io.BytesIO(b""))
        dest = w["tmp"] / f"x-{filtered}-{name.replace('/', '_')}"
        dest.mkdir()
        with pytest.raises((ci.CiError, tarfile.TarError)):
            ci._extract(buf.getvalue(), dest)
        assert not (w["tmp"] / "escaped").exists()
