"""The shared node PKI (formulas/pki): one place makes node keys and certificates and
copies CA certificates from the mine, every formula uses it, and no formula sources
another formula's files. The check script and the CA copy are run here for real."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from stacksalt import paths
from stacksalt.validate import collect
from tests.conftest import deployments

pytestmark = pytest.mark.fast

FORMULAS = paths.formulas_dir()
SHARED = "pki"
# the shared places: formulas that exist to be sourced by others (no node applies them)
SHARED_FORMULAS = (SHARED, "openstack")
CHECK_STATE = "pki-certificate-check-script-managed"
CA_TEMPLATE = "salt://pki/files/ca.crt.jinja"
CHECK_SCRIPT = FORMULAS / "pki" / "files" / "certificate-current.sh"
# The CA minion's own CAs: a key and a self-signed certificate, no node certificate.
CA_OWN_STATES = {"formulas/salt/minion/ca.sls"}
# Who owns a node's private key, by the formula that asks for it (everything else: root).
KEY_OWNERS = {"etcd": ("etcd", "etcd"), "docker": ("docker-registry", "docker-registry")}

X509_STATE = re.compile(
    r"x509\.(certificate|private_key)_managed|^\s*-\s*(certificate|private_key)_managed\b",
    re.MULTILINE)
SALT_URL = re.compile(r"salt://([A-Za-z0-9_.-]+)/")
JINJA_IMPORT = re.compile(
    r"""\{%-?\s*(?:from|import|import_yaml|import_json|import_text|include)\s+["']([^"'/]+)/""")


def formula_files() -> list[tuple[str, Path]]:
    """(formula, file) for every text file of every formula."""
    out = []
    for f in sorted(FORMULAS.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            out.append((f.relative_to(FORMULAS).parts[0], f))
    return out


def rel(f: Path) -> str:
    return str(f.relative_to(paths.repo_root()))


# -- the boundaries, in the source ---------------------------------------------------------


def test_only_the_shared_formula_makes_node_keys_and_certificates():
    offenders = []
    for formula, f in formula_files():
        text = f.read_text(errors="ignore")
        if formula == SHARED or not X509_STATE.search(text):
            continue
        if rel(f) in CA_OWN_STATES and "ca_server" not in text:
            continue
        offenders.append(rel(f))
    assert not offenders, (
        "x509.certificate_managed / private_key_managed outside formulas/pki (call "
        f"pki/macros.jinja's key_and_certificate instead): {offenders}")


def test_no_formula_sources_another_formulas_files():
    """salt:// sources and Jinja imports only from the formula itself or a shared formula
    (pki: node certificates; openstack: the OpenStack formulas' common templates)."""
    offenders = []
    for formula, f in formula_files():
        text = f.read_text(errors="ignore")
        for m in SALT_URL.finditer(text):
            if m.group(1) not in (formula, *SHARED_FORMULAS):
                offenders.append(f"{rel(f)}: {m.group(0)}")
        for m in JINJA_IMPORT.finditer(text):
            if m.group(1) not in (formula, *SHARED_FORMULAS):
                offenders.append(f"{rel(f)}: imports {m.group(1)}/")
    assert not offenders, "files of another formula sourced:\n" + "\n".join(offenders)


# -- the pattern, in every node's rendered states -------------------------------------------


def call(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next(collect.state_calls(state))


def requires(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    return [next(iter(r.items())) for r in kwargs.get("require", []) if isinstance(r, dict)]


@pytest.mark.parametrize("deployment", deployments())
def test_every_node_certificate_is_the_shared_pattern(deployment, lab_secrets):
    from stacksalt import secrets

    secrets.generate(deployment)
    seen = 0
    problems = []
    for node, states in collect.rendered(deployment).items():
        calls = {sid: call(s) for sid, s in states.items() if isinstance(s, dict)}
        keys = {kw["name"]: (sid, kw) for sid, (fun, kw) in calls.items()
                if fun == "x509.private_key_managed"}
        for sid, (fun, kw) in sorted(calls.items()):
            if fun != "x509.certificate_managed" or "ca_server" not in kw:
                continue
            seen += 1
            where = f"{node}: {sid}"
            req = requires(kw)
            unless = kw.get("unless", "")
            if CHECK_STATE not in calls:
                problems.append(f"{where}: the node has no {CHECK_STATE}")
            elif ("file", CHECK_STATE) not in req:
                problems.append(f"{where}: does not require {CHECK_STATE}")
            elif calls[CHECK_STATE][1]["name"] not in unless:
                problems.append(f"{where}: its unless does not run the check script")
            if "test -x" in unless:
                problems.append(f"{where}: `test -x` guard in its unless")
            key = keys.get(kw["private_key"])
            if not key or ("x509", key[0]) not in req:
                problems.append(f"{where}: does not require the state of its key")
            else:
                user, group = KEY_OWNERS.get(states[key[0]]["__sls__"].split(".")[0],
                                             ("root", "root"))
                k = key[1]
                if (k.get("mode"), k.get("user"), k.get("group")) != ("0600", user, group):
                    problems.append(f"{where}: key {k['name']} not 0600 {user}:{group}")
                if f"600 {user} {group}" not in k.get("unless", ""):
                    problems.append(f"{where}: key state without its owner/mode shortcut")
            cas = [i for m, i in req if m == "file" and i in calls
                   and calls[i][1].get("source") == CA_TEMPLATE]
            if not cas:
                problems.append(f"{where}: requires no CA copy from {CA_TEMPLATE}")
            for ca in cas:
                guards = [i for m, i in requires(calls[ca][1]) if m == "test"]
                if not guards or calls[guards[0]][0] != "test.fail_without_changes":
                    problems.append(f"{where}: CA copy {ca} has no mine check")
    assert seen > 0
    assert not problems, "\n".join(problems[:40])


# -- the check script, run ------------------------------------------------------------------


def openssl(*argv: str, cwd: Path) -> None:
    subprocess.run(["openssl", *argv], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """Two CAs; a node key and certificate (CN, O, SANs) from the first; variants."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                "-out", f"{ca}.crt", "-days", "30", "-subj", f"/CN={ca}", cwd=d)
    for key in ("node", "stranger"):
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", f"{key}.key", cwd=d)

    def issue(name: str, ca: str, days: int, subj: str = "/O=system:nodes/CN=node1",
              san: str = "DNS:node1, DNS:node1.lab.local, IP:10.0.0.1") -> None:
        openssl("req", "-new", "-key", "node.key", "-subj", subj, "-out", f"{name}.csr", cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text(f"subjectAltName = {san}\n" if san else "basicConstraints = CA:false\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-days", str(days), "-extfile", str(ext), "-out", f"{name}.crt",
                cwd=d)

    issue("node", "ca", 20)
    issue("foreign", "other-ca", 20)
    issue("nosan", "ca", 20, subj="/CN=node1", san="")
    return d


@pytest.mark.parametrize(("crt", "key", "ca", "days", "cn", "org", "sans", "current"), [
    ("node", "node", "ca", 10, "node1", "system:nodes",
     "IP:10.0.0.1, DNS:node1.lab.local, DNS:node1", True),
    ("node", "node", "ca", 10, "node1", "", "DNS:node1, DNS:node1.lab.local, IP:10.0.0.1", True),
    ("node", "node", "ca", 25, "node1", "", "DNS:node1, DNS:node1.lab.local, IP:10.0.0.1", False),
    ("node", "stranger", "ca", 10, "node1", "", "DNS:node1, DNS:node1.lab.local, IP:10.0.0.1",
     False),
    ("foreign", "node", "ca", 10, "node1", "", "DNS:node1, DNS:node1.lab.local, IP:10.0.0.1",
     False),
    ("node", "node", "ca", 10, "node2", "", "DNS:node1, DNS:node1.lab.local, IP:10.0.0.1", False),
    ("node", "node", "ca", 10, "node1", "system:masters",
     "DNS:node1, DNS:node1.lab.local, IP:10.0.0.1", False),
    ("node", "node", "ca", 10, "node1", "", "DNS:node1, IP:10.0.0.1", False),
    ("node", "node", "ca", 10, "node1", "", "", False),
    ("nosan", "node", "ca", 10, "node1", "", "", True),
    ("nosan", "node", "ca", 10, "node1", "", "DNS:node1", False),
    ("missing", "node", "ca", 10, "node1", "", "", False),
])
def test_check_script_says_current_only_when_everything_matches(
        certs, crt, key, ca, days, cn, org, sans, current):
    argv = ["sh", str(CHECK_SCRIPT), f"{crt}.crt", f"{key}.key", f"{ca}.crt", str(days), cn,
            org, sans]
    rc = subprocess.run(argv, cwd=certs, capture_output=True).returncode
    assert (rc == 0) == current, (argv[2:], rc)


# -- the CA copy, run (masterless: the mine answers for this minion only) -------------------


def _apply_ca_copy(tmp: Path, mine: dict[str, str] | None) -> dict[str, Any]:
    import salt.payload

    roots = tmp / "roots"
    roots.mkdir(exist_ok=True)
    ssl = {"ca_server": "ca-minion", "mine_function": "stacksalt_ca_certs",
           "ca_base_dir": "/etc/pki/ca", "authority": "etcd"}
    (roots / "ca_copy.sls").write_text(
        '{%- from "pki/macros.jinja" import ca_certificate with context %}\n'
        f"{{{{ ca_certificate('test', {json.dumps(str(tmp / 'ca.crt'))}, {json.dumps(ssl)}) }}}}\n")
    run = tmp / "run"
    (run / "cache").mkdir(parents=True, exist_ok=True)
    conf = {"file_client": "local", "id": "ca-minion", "root_dir": str(run),
            "pki_dir": str(run / "pki"), "cachedir": str(run / "cache"),
            "sock_dir": str(run / "sock"), "log_file": str(run / "minion.log"),
            "file_roots": {"base": [str(FORMULAS), str(roots)]}}
    (tmp / "etc").mkdir(exist_ok=True)
    (tmp / "etc" / "minion").write_text(json.dumps(conf))
    datastore = run / "cache" / "datastore"
    datastore.write_bytes(salt.payload.dumps({"mine_cache": {"stacksalt_ca_certs": mine}}
                                             if mine else {}))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("salt-call")), "--local", "-c", str(tmp / "etc"),
         "--out=json", "state.apply", "ca_copy"], capture_output=True, text=True)
    out = json.loads(proc.stdout[proc.stdout.find("{"):])["local"]
    return {r["__id__"]: r for r in out.values()}


def test_ca_copy_fails_in_one_line_without_the_ca_and_follows_the_mine():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ret = _apply_ca_copy(tmp, None)
        guard = ret["test-ca-certificate-in-mine"]
        assert guard["result"] is False
        assert "\n" not in guard["comment"]
        assert "ca-minion" in guard["comment"] and "salt.minion.ca" in guard["comment"]
        assert "/etc/pki/ca/etcd/ca.crt" in guard["comment"]
        assert ret["test-ca-certificate-managed"]["result"] is False
        assert not (tmp / "ca.crt").exists()

        ret = _apply_ca_copy(tmp, {"/etc/pki/ca/etcd/ca.crt": pem})
        assert all(r["result"] for r in ret.values()), ret
        assert (tmp / "ca.crt").read_text().strip() == pem
        assert oct((tmp / "ca.crt").stat().st_mode & 0o777) == "0o644"
        ret = _apply_ca_copy(tmp, {"/etc/pki/ca/etcd/ca.crt": pem})
        assert not [i for i, r in ret.items() if r["changes"]], ret

        # a renewed CA reaches the node with the next apply: nothing is read at render time
        renewed = pem.replace("MIIB", "MIIC")
        ret = _apply_ca_copy(tmp, {"/etc/pki/ca/etcd/ca.crt": renewed})
        assert ret["test-ca-certificate-managed"]["changes"]
        assert (tmp / "ca.crt").read_text().strip() == renewed
