"""`stacksalt secrets` for a real master: import-key, set, rotate, list, check, generate.

A temporary checkout (a copy of reclass/ and pillar/, formulas/ symlinked) is the
repository; a real "salt master" key pair lives in its own GNUPGHOME, and only its public
half is given to `stacksalt secrets import-key`. The values are proven by decrypting with
the master's private key, which the deployment's keyring never holds.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import gnupg
import pytest
import yaml

from stacksalt import cli, paths, secrets
from stacksalt.secrets import check as check_mod
from stacksalt.secrets import store
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast

DEPLOYMENT = "lab"
SHOWN = f"pillar/secrets/{DEPLOYMENT}.sls"


def make_key(home: Path, email: str) -> tuple[gnupg.GPG, str]:
    home.mkdir(mode=0o700, parents=True)
    gpg = gnupg.GPG(gnupghome=str(home))
    # like `gpg --full-gen-key` makes it: a signing primary key and an encryption subkey
    key = gpg.gen_key(gpg.gen_key_input(
        key_type="RSA", key_length=2048, key_usage="sign", subkey_type="RSA",
        subkey_length=2048, subkey_usage="encrypt", name_real="salt master",
        name_email=email, expire_date=0, no_protection=True))
    assert key.fingerprint, key.stderr
    return gpg, key.fingerprint


@pytest.fixture(scope="module")
def homes():
    top = Path(tempfile.mkdtemp(prefix="ss-keys-", dir="/tmp"))
    yield top
    for home in top.iterdir():
        stop_agent(home)
    shutil.rmtree(top)


@pytest.fixture(scope="module")
def master(homes):
    """The salt master's key pair: (gpg with the private key, fingerprint, public armor)."""
    gpg, fpr = make_key(homes / "master", "salt@master.invalid")
    return gpg, fpr, gpg.export_keys(fpr)


@pytest.fixture(scope="module")
def other(homes):
    """Somebody else's key pair (not the master's)."""
    gpg, fpr = make_key(homes / "other", "someone@else.invalid")
    return gpg, fpr, gpg.export_keys(fpr)


def stop_agent(home: Path) -> None:
    """End the gpg-agent that gpg started for ``home`` (only that one)."""
    if home.is_dir():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)


@pytest.fixture
def root(monkeypatch):
    # a short path: gpg-agent's socket lives in the keyring folder, and a Unix socket's
    # path has at most 107 characters (pytest's tmp_path is too long for it)
    top = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    root = copy_deployment(DEPLOYMENT, top / "repo")
    for sls in (root / "pillar" / "secrets").glob("*.sls"):
        sls.unlink()
    shutil.rmtree(root / ".stacksalt", ignore_errors=True)
    monkeypatch.setattr(paths, "_active", root.resolve())  # the CLI's -C, for every call
    yield root
    stop_agent(secrets.keyring_dir(DEPLOYMENT))
    stop_agent(top / "no-keys")
    shutil.rmtree(top)


def run(monkeypatch, capsys, argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = cli.main(["-C", str(paths.active()), "secrets", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def imported(monkeypatch, capsys, master) -> str:
    rc, out, err = run(monkeypatch, capsys, ["import-key", "-"], stdin=master[2])
    assert rc == 0, err
    return master[1]


def entries(root: Path) -> dict[str, str]:
    text = (root / SHOWN).read_text()
    assert text.startswith(store.HEADER)
    return yaml.safe_load(text.removeprefix(store.HEADER))["secrets"]


def as_master(master, armored: str) -> str:
    result = master[0].decrypt(armored)
    assert result.ok, result.status
    return str(result)


def test_import_set_rotate_check_and_the_master_decrypts(root, monkeypatch, capsys, master):
    fpr = imported(monkeypatch, capsys, master)
    assert secrets.pinned_fingerprint(DEPLOYMENT) == fpr
    own = gnupg.GPG(gnupghome=str(secrets.keyring_dir(DEPLOYMENT)))
    assert [k["fingerprint"] for k in own.list_keys()] == [fpr]
    assert own.list_keys(secret=True) == [], "only the public half is imported"

    rc, out, err = run(monkeypatch, capsys, ["set", "docker_registry_password"],
                       stdin="s3cret value\n")
    assert rc == 0, err
    rc, _, err = run(monkeypatch, capsys, ["set", "mariadb_root_password"], stdin="two\n\n")
    assert rc == 0, err
    names = sorted(secrets.references(secrets_deployment()))
    assert len(names) > 10
    for name in names:
        if name not in ("docker_registry_password", "mariadb_root_password"):
            rc, out, err = run(monkeypatch, capsys, ["rotate", name])
            assert (rc, out) == (0, f"rotated {name}\n"), err

    found = entries(root)
    assert sorted(found) == names
    assert as_master(master, found["docker_registry_password"]) == "s3cret value"
    assert as_master(master, found["mariadb_root_password"]) == "two\n", "one newline stripped"
    assert as_master(master, found["linux_ops_password_hash"]).startswith("$6$")
    assert "BEGIN PRIVATE KEY" in as_master(master, found["kubernetes_service_account_key"])
    (key,) = master[0].list_keys()
    (subkey,) = key["subkeys"]
    for armored in found.values():
        assert secrets.recipients(armored) == [subkey[0]], "the master's encryption subkey"
    assert stat.S_IMODE((root / SHOWN).stat().st_mode) == 0o600
    assert sorted(p.name for p in (root / "pillar" / "secrets").iterdir()) == [
        "README.md", f"{DEPLOYMENT}.sls"], "no temporary file is left behind"

    rc, out, err = run(monkeypatch, capsys, ["check"])
    assert (rc, out) == (0, ""), out + err

    before = found["docker_registry_password"]
    rc, out, err = run(monkeypatch, capsys, ["rotate", "docker_registry_password", "--stdin"],
                       stdin="rotated by hand\n")
    assert (rc, out) == (0, "rotated docker_registry_password\n")
    after = entries(root)["docker_registry_password"]
    assert after != before and as_master(master, after) == "rotated by hand"
    rc, out, err = run(monkeypatch, capsys, ["rotate", "mariadb_root_password"])
    new = as_master(master, entries(root)["mariadb_root_password"])
    assert rc == 0 and new != "two\n" and len(new) >= 24
    assert new not in out + err, "rotate never prints the value"
    # the master's side of check: decrypt with the master's keyring (the private key)
    refs = secrets.references(secrets_deployment())
    assert check_mod.problems(DEPLOYMENT, refs,
                              decrypt=secrets.gnupg_decryptor(master[0].gnupghome)) == []


def secrets_deployment():
    from stacksalt.deployment import Deployment

    return Deployment.load(DEPLOYMENT)


def test_a_private_key_is_refused(root, monkeypatch, capsys, master, tmp_path):
    private = master[0].export_keys(master[1], secret=True, expect_passphrase=False)
    assert "PRIVATE KEY BLOCK" in private
    path = tmp_path / "master.asc"
    path.write_text(private)
    rc, out, err = run(monkeypatch, capsys, ["import-key", str(path)])
    assert rc == 1 and out == ""
    assert err.count("\n") == 1 and f"{path}: holds a private key" in err
    rc, out, err = run(monkeypatch, capsys, ["import-key"], stdin=private)
    assert rc == 1 and "stdin: holds a private key" in err
    # a private key without its armor header is caught by what gpg sees in it, too
    rc, _, err = run(monkeypatch, capsys, ["import-key"], stdin=private.replace(
        "PGP PRIVATE KEY BLOCK", "PGP PUBLIC KEY BLOCK"))
    assert rc == 1 and "holds a private key" in err
    assert secrets.pinned_fingerprint(DEPLOYMENT) is None
    assert not secrets.keyring_dir(DEPLOYMENT).exists() or not gnupg.GPG(
        gnupghome=str(secrets.keyring_dir(DEPLOYMENT))).list_keys()
    rc, _, err = run(monkeypatch, capsys, ["import-key"], stdin="not a key\n")
    assert rc == 1 and "stdin: no armored gpg public key" in err


def test_set_without_a_pinned_key_is_refused(root, monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["set", "docker_registry_password"], stdin="x\n")
    assert rc == 1 and out == ""
    assert "secrets:master_key: no master key is pinned" in err
    assert "run `stacksalt secrets import-key` first" in err
    assert not (root / SHOWN).exists()


def test_a_value_cannot_be_given_on_the_command_line(root, monkeypatch, capsys, master):
    imported(monkeypatch, capsys, master)
    for argv in (["set", "docker_registry_password", "the-value"],
                 ["set", "docker_registry_password", "--value", "the-value"],
                 ["rotate", "docker_registry_password", "the-value"]):
        with pytest.raises(SystemExit) as exc:
            run(monkeypatch, capsys, argv)
        assert exc.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err
    assert not (root / SHOWN).exists()


def test_set_refuses_an_empty_value_and_an_unreferenced_name(root, monkeypatch, capsys,
                                                               master):
    imported(monkeypatch, capsys, master)
    rc, _, err = run(monkeypatch, capsys, ["set", "docker_registry_password"], stdin="\n")
    assert rc == 1 and "secrets:docker_registry_password: the value is empty" in err
    rc, _, err = run(monkeypatch, capsys, ["set", "docker_registry_pasword"], stdin="x\n")
    assert rc == 1
    assert f"{SHOWN}: secrets:docker_registry_pasword: no node of lab references it" in err
    assert "close: docker_registry_password" in err
    assert not (root / SHOWN).exists()
    rc, _, err = run(monkeypatch, capsys, ["set", "docker_registry_pasword", "--force"],
                     stdin="x\n")
    assert rc == 0, err
    assert as_master(master, entries(root)["docker_registry_pasword"]) == "x"


def test_set_keeps_the_other_entries(root, monkeypatch, capsys, master):
    imported(monkeypatch, capsys, master)
    run(monkeypatch, capsys, ["set", "docker_registry_password"], stdin="one\n")
    first = entries(root)["docker_registry_password"]
    run(monkeypatch, capsys, ["set", "mariadb_root_password"], stdin="two\n")
    found = entries(root)
    assert found["docker_registry_password"] == first
    assert as_master(master, found["mariadb_root_password"]) == "two"


def test_reimporting_another_key_needs_replace(root, monkeypatch, capsys, master, other):
    config = secrets.config_file(DEPLOYMENT)
    config.write_text(f"# the lab's settings\ndeployment: {DEPLOYMENT}  # where it lives\n"
                      "secrets:\n  master_key: null  # the master's\n")
    ignore = root / ".gitignore"
    ignore.write_text(".stacksalt/\n# secrets encrypted to this machine's throwaway key (x)\n"
                      f"pillar/secrets/{DEPLOYMENT}.sls\n")
    fpr = imported(monkeypatch, capsys, master)
    rc, _, err = run(monkeypatch, capsys, ["import-key", "-"], stdin=master[2])
    assert rc == 0, "the same key again is fine"
    rc, _, err = run(monkeypatch, capsys, ["import-key", "-"], stdin=other[2])
    assert rc == 1 and err.count("\n") == 1
    assert f"secrets:master_key: already pins {fpr}" in err and "--replace" in err
    assert secrets.pinned_fingerprint(DEPLOYMENT) == fpr
    rc, _, err = run(monkeypatch, capsys, ["import-key", "-", "--replace"], stdin=other[2])
    assert rc == 0, err
    assert secrets.pinned_fingerprint(DEPLOYMENT) == other[1]
    assert yaml.safe_load(config.read_text()) == {
        "deployment": DEPLOYMENT, "secrets": {"master_key": other[1]}}
    # a real master's secrets are committed: the throwaway ignore lines are gone
    assert ignore.read_text() == ".stacksalt/\n"
    assert config.read_text().startswith("# the lab's settings\n")
    assert "# where it lives" in config.read_text()


def filled(root, monkeypatch, capsys, master) -> dict[str, str]:
    imported(monkeypatch, capsys, master)
    for name in sorted(secrets.references(secrets_deployment())):
        run(monkeypatch, capsys, ["rotate", name], stdin="")
    rc, out, err = run(monkeypatch, capsys, ["check"])
    assert (rc, out) == (0, ""), out + err
    return entries(root)


def rewrite(root: Path, found: dict[str, str]) -> None:
    store.write_entries(DEPLOYMENT, found)


def test_check_fails_for_a_missing_secret(root, monkeypatch, capsys, master):
    found = filled(root, monkeypatch, capsys, master)
    del found["mariadb_root_password"]
    rewrite(root, found)
    rc, out, _ = run(monkeypatch, capsys, ["check"])
    assert rc == 1
    assert out.splitlines() == [
        f"{SHOWN}: secrets:mariadb_root_password: missing (referenced by "
        "mst01.lab.local: kubernetes:control:service:mariadb:secret_env:MARIADB_ROOT_PASSWORD"
        " and 2 more)"]


def test_check_fails_for_an_entry_encrypted_to_another_key(root, monkeypatch, capsys, master,
                                                          other):
    found = filled(root, monkeypatch, capsys, master)
    enc = other[0].encrypt("not for the master", other[1], always_trust=True, armor=True)
    found["docker_registry_password"] = str(enc)
    both = master[0]
    both.import_keys(other[2])
    found["mariadb_root_password"] = str(both.encrypt(
        "for both", [master[1], other[1]], always_trust=True, armor=True))
    both.delete_keys(other[1])
    rewrite(root, found)
    rc, out, _ = run(monkeypatch, capsys, ["check"])
    assert rc == 1
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith(f"{SHOWN}: secrets:docker_registry_password: encrypted to key "
                               "ID ")
    assert lines[0].endswith(f"not only to the pinned master key {master[1]}")
    assert lines[1].startswith(f"{SHOWN}: secrets:mariadb_root_password: also encrypted to")


def test_check_fails_for_a_corrupted_entry(root, monkeypatch, capsys, master):
    found = filled(root, monkeypatch, capsys, master)
    lines = found["docker_registry_password"].splitlines()
    body = lines[3]
    lines[3] = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    found["docker_registry_password"] = "\n".join(lines) + "\n"
    found["mariadb_root_password"] = "plaintext by mistake"
    rewrite(root, found)
    rc, out, _ = run(monkeypatch, capsys, ["check"])
    assert rc == 1
    assert out.splitlines() == [
        f"{SHOWN}: secrets:docker_registry_password: does not parse: gpg finds no valid "
        "OpenPGP data in it",
        f"{SHOWN}: secrets:mariadb_root_password: does not parse: not an armored gpg message"]
    (root / SHOWN).write_text(store.HEADER + "secrets: [unclosed\n")
    rc, out, _ = run(monkeypatch, capsys, ["check"])
    assert (rc, out) == (1, f"{SHOWN}: not valid YAML (ParserError)\n")


def test_check_decrypts_on_the_masters_side(root, monkeypatch, capsys, master):
    filled(root, monkeypatch, capsys, master)
    refs = secrets.references(secrets_deployment())
    empty = root.parent / "no-keys"
    empty.mkdir(mode=0o700)
    out = check_mod.problems(DEPLOYMENT, refs, decrypt=secrets.gnupg_decryptor(str(empty)))
    assert len(out) == len(refs)
    assert all(line.startswith(f"{SHOWN}: secrets:") and "could not decrypt" in line
               for line in out), out


def test_list_names_references_and_missing_without_values(root, monkeypatch, capsys, master):
    imported(monkeypatch, capsys, master)
    run(monkeypatch, capsys, ["set", "docker_registry_password"], stdin="list-me-not\n")
    run(monkeypatch, capsys, ["set", "old_unused_password", "--force"], stdin="old-value\n")
    rc, out, err = run(monkeypatch, capsys, ["list"])
    assert rc == 0, err
    assert "BEGIN PGP" not in out + err
    assert "list-me-not" not in out + err and "old-value" not in out + err
    lines = out.splitlines()
    assert "docker_registry_password  present  docker:registry:password_secret (cfg01)" in lines
    assert "old_unused_password  unreferenced  -" in lines
    assert any(line.startswith("mariadb_root_password  missing  kubernetes:control:service:"
                               "mariadb:secret_env:MARIADB_ROOT_PASSWORD (mst01, mst02, mst03)")
               for line in lines)
    missing = lines[-1].removeprefix("missing: ").split(", ")
    assert "mariadb_root_password" in missing and "docker_registry_password" not in missing
    assert len(lines) == len(secrets.references(secrets_deployment())) + 2


def test_generate_pins_its_throwaway_key_and_check_decrypts(root, monkeypatch, capsys):
    rc, _, err = run(monkeypatch, capsys, ["generate", DEPLOYMENT])
    assert rc == 0, err
    own = gnupg.GPG(gnupghome=str(secrets.keyring_dir(DEPLOYMENT)))
    (key,) = own.list_keys(secret=True)
    assert secrets.pinned_fingerprint(DEPLOYMENT) == key["fingerprint"]
    rc, out, err = run(monkeypatch, capsys, ["check"])
    assert (rc, out) == (0, ""), out + err
    # with the throwaway key, check also decrypts: a message to the right key whose
    # encrypted body is damaged (armor and CRC redone, so it still parses) is caught
    found = entries(root)
    found["docker_registry_password"] = damaged_body(found["docker_registry_password"])
    store.write_entries(DEPLOYMENT, found)
    rc, out, err = run(monkeypatch, capsys, ["check"])
    assert rc == 1
    (line,) = out.splitlines()
    assert line.startswith(f"{SHOWN}: secrets:docker_registry_password: gpg could not "
                           "decrypt it"), line


def damaged_body(armored: str) -> str:
    """The message with one byte of its encrypted data flipped, armored again by gpg."""
    def gpg(option: str, data: bytes) -> bytes:
        return subprocess.run(["gpg", "--batch", option], input=data, capture_output=True,
                              check=True).stdout
    raw = gpg("--dearmor", armored.encode())
    raw = raw[:-5] + bytes([raw[-5] ^ 0xFF]) + raw[-4:]
    return gpg("--enarmor", raw).decode().replace("PGP ARMORED FILE", "PGP MESSAGE")


def test_generate_refuses_a_real_masters_key(root, monkeypatch, capsys, master):
    imported(monkeypatch, capsys, master)
    rc, out, err = run(monkeypatch, capsys, ["generate", DEPLOYMENT])
    assert rc == 1 and out == "" and err.count("\n") == 1
    assert "generate makes throwaway keys for test deployments only" in err
    assert not (root / SHOWN).exists()


def test_a_failed_write_leaves_no_temporary_file_and_the_old_file(root):
    path = secrets.secrets_file(DEPLOYMENT)
    store.write_atomic(path, "old\n", 0o600)
    with pytest.raises(TypeError):
        store.write_atomic(path, b"not text", 0o600)  # type: ignore[arg-type]
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["README.md", path.name]


def test_a_lab_keyring_from_before_the_pin_is_pinned_again(root, monkeypatch, capsys):
    """A machine whose lab keyring was made before fingerprints were pinned: generate and
    rotate pin its throwaway key; set (for real masters) still wants import-key."""
    assert run(monkeypatch, capsys, ["generate", DEPLOYMENT])[0] == 0
    fpr = secrets.pinned_fingerprint(DEPLOYMENT)
    secrets.throwaway_pin_file(DEPLOYMENT).unlink()
    rc, _, err = run(monkeypatch, capsys, ["set", "docker_registry_password"], stdin="x\n")
    assert rc == 1 and "no master key is pinned" in err
    rc, out, err = run(monkeypatch, capsys, ["rotate", "docker_registry_password"])
    assert (rc, out) == (0, "rotated docker_registry_password\n"), err
    assert secrets.pinned_fingerprint(DEPLOYMENT) == fpr
    secrets.throwaway_pin_file(DEPLOYMENT).unlink()
    assert run(monkeypatch, capsys, ["generate", DEPLOYMENT])[0] == 0
    assert secrets.pinned_fingerprint(DEPLOYMENT) == fpr
    assert run(monkeypatch, capsys, ["check"])[:2] == (0, "")


# -- an ssh key pair: the public line is the secret, the private key stays here ----------

SSH_SECRET = "git_server_lab_admin_ssh_public_key"


def reference_ssh_secret(root: Path) -> None:
    """cfg01 references SSH_SECRET (as the lab's cluster class will for its git server)."""
    node = root / "reclass" / "nodes" / DEPLOYMENT / "cfg01.lab.local.yml"
    data = yaml.safe_load(node.read_text())
    data["parameters"].setdefault("git", {}).setdefault("server", {})[
        "admin_keys_secret"] = SSH_SECRET
    node.write_text(yaml.safe_dump(data))


def public_of(key: Path) -> str:
    return subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_generate_makes_an_ssh_key_pair_and_keeps_it(root, monkeypatch, capsys):
    reference_ssh_secret(root)
    assert SSH_SECRET in secrets.references(secrets_deployment())
    rc, out, err = run(monkeypatch, capsys, ["generate", DEPLOYMENT])
    assert rc == 0, err
    assert "PRIVATE KEY" not in out + err
    value = secrets.decrypt_all(DEPLOYMENT)[SSH_SECRET]
    assert re.fullmatch(r"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/]+=* "
                        + SSH_SECRET + "@stacksalt-lab", value)
    key = secrets.ssh_key_file(DEPLOYMENT, SSH_SECRET)
    assert key == root.resolve() / ".stacksalt" / "ssh" / SSH_SECRET
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in key.parent.iterdir()) == [SSH_SECRET]  # no scratch left
    assert public_of(key) == value
    # converging again changes nothing: the same ciphertext, the same private key
    before, private = entries(root), key.read_bytes()
    assert secrets.generate(DEPLOYMENT)[0] == []
    assert (entries(root), key.read_bytes()) == (before, private)


def test_a_lost_ssh_private_key_is_replaced_by_a_new_pair(root, monkeypatch, capsys):
    reference_ssh_secret(root)
    secrets.generate(DEPLOYMENT)
    old = secrets.decrypt_all(DEPLOYMENT)
    key = secrets.ssh_key_file(DEPLOYMENT, SSH_SECRET)
    key.unlink()  # a fresh clone: the value is there, its private half is not
    rc, out, err = run(monkeypatch, capsys, ["generate", DEPLOYMENT])
    assert rc == 0, err
    assert out.splitlines()[0] == (
        f"secrets:{SSH_SECRET}: its private key .stacksalt/ssh/{SSH_SECRET} was missing "
        "here: a new key pair replaces the value")
    assert " 1 added, " in out.splitlines()[1]
    new = secrets.decrypt_all(DEPLOYMENT)
    assert new[SSH_SECRET] != old[SSH_SECRET]
    assert public_of(key) == new[SSH_SECRET]
    assert {k: v for k, v in new.items() if k != SSH_SECRET} == \
        {k: v for k, v in old.items() if k != SSH_SECRET}
    # rotate makes a new pair too
    rc, out, err = run(monkeypatch, capsys, ["rotate", SSH_SECRET])
    assert (rc, out) == (0, f"rotated {SSH_SECRET}\n"), err
    rotated = secrets.decrypt_all(DEPLOYMENT)[SSH_SECRET]
    assert rotated != new[SSH_SECRET] and public_of(key) == rotated
