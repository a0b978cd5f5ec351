"""State: etcd's role-based access control, keyed on the client certificate's CN.

Every node holds an etcd client certificate for Calico, signed by the CA that etcd trusts.
Without auth, any of them reads and writes all of etcd, ``/registry`` (Kubernetes' objects,
Secrets among them) included. With ``auth enable`` and client-certificate authentication,
etcd takes the user name from the certificate's CN: each identity gets only its roles'
key ranges (https://etcd.io/docs/v3.5/op-guide/authentication/rbac/ ; "Using TLS Common
Name").

``auth_enabled`` makes the roles and users exactly what the model says (permissions
granted or revoked, roles granted or revoked; users and roles the model does not name are
left alone, so an operator's own are kept), then enables auth. It runs ``etcdctl`` as the
root identity (a client certificate with CN=root, of the root user). Idempotent: with
nothing to change it changes nothing; ``test=True`` lists what it would do. It waits up to
``wait`` seconds for etcd to answer with quorum before reading anything.

Whether auth is on is read with a probe identity that is no user (etcd 3.4 has no
``auth status``): a read is refused with "permission denied" only when auth is on.

The planning is pure (``plan``); the etcdctl calls are in ``_Etcdctl``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from typing import Any

PERMS = {0: "read", 1: "write", 2: "readwrite"}
DENIED = "permission denied"


class EtcdAuthError(Exception):
    """One line: what failed and what to do."""


def range_end(prefix: str) -> str:
    """The range end of a prefix, as etcd computes it (last byte + 1)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return raw.decode(errors="surrogateescape")
        raw.pop()
    return "\0"


def wanted_permissions(roles: dict[str, list[dict[str, str]]]) -> dict[str, set[tuple[str, str]]]:
    """{role: {(permission, prefix)}} from the model's role list; one-line errors."""
    out: dict[str, set[tuple[str, str]]] = {}
    for role, perms in (roles or {}).items():
        if role == "root":
            raise EtcdAuthError("etcd:server:auth:roles:root: the root role is built in")
        got = set()
        for i, perm in enumerate(perms or []):
            kind = perm.get("permission", "readwrite") if isinstance(perm, dict) else None
            prefix = perm.get("prefix") if isinstance(perm, dict) else None
            if kind not in PERMS.values() or not prefix:
                raise EtcdAuthError(f"etcd:server:auth:roles:{role}:{i}: needs prefix and "
                                    "permission (read, write or readwrite)")
            got.add((kind, prefix))
        out[role] = got
    return out


def plan(current: dict[str, Any], roles: dict[str, set[tuple[str, str]]],
         users: dict[str, set[str]]) -> list[list[str]]:
    """The etcdctl argument lists that take ``current`` ({enabled, roles: {role: perms},
    users: {user: roles}}) to the model. Auth is enabled last, once root exists."""
    cmds: list[list[str]] = []
    if "root" not in users or "root" not in users["root"]:
        raise EtcdAuthError("etcd:server:auth:users: needs user root with role root "
                            "(etcd refuses auth enable without it)")
    for role, perms in sorted(roles.items()):
        have = current["roles"].get(role)
        if have is None:
            cmds.append(["role", "add", role])
            have = set()
        # one permission per key range: granting a range again replaces its kind
        want_by = {prefix: kind for kind, prefix in perms}
        have_by = {prefix: kind for kind, prefix in have}
        for prefix, kind in sorted(want_by.items()):
            if have_by.get(prefix) != kind:
                cmds.append(["role", "grant-permission", "--prefix=true", role, kind, prefix])
        for prefix in sorted(set(have_by) - set(want_by)):
            if ".." in prefix:  # a plain range, not a prefix
                cmds.append(["role", "revoke-permission", role, *prefix.split("..", 1)])
            else:
                cmds.append(["role", "revoke-permission", "--prefix=true", role, prefix])
    for user, want in sorted(users.items()):
        have = current["users"].get(user)
        if have is None:
            cmds.append(["user", "add", user, "--no-password"])
            have = set()
        for role in sorted(want - have):
            cmds.append(["user", "grant-role", user, role])
        for role in sorted(have - want):
            cmds.append(["user", "revoke-role", user, role])
    if not current["enabled"]:
        cmds.append(["auth", "enable"])
    return cmds


def _perm_of(entry: dict[str, Any]) -> tuple[str, str] | None:
    key = base64.b64decode(entry.get("key", "")).decode(errors="surrogateescape")
    end = base64.b64decode(entry.get("range_end", "")).decode(errors="surrogateescape")
    kind = PERMS.get(int(entry.get("permType", 0)))
    # a prefix permission is [key, range_end(key)); anything else is not the model's shape
    if kind and end == range_end(key):
        return kind, key
    return (kind or "read"), f"{key}..{end}"


class _Etcdctl:
    def __init__(self, binary: str, endpoints: str, cacert: str, cert: str, key: str,
                 timeout: float = 10.0):
        self.base = [binary, f"--endpoints={endpoints}", f"--cacert={cacert}",
                     f"--command-timeout={int(timeout)}s"]
        self.cert, self.key = cert, key

    def run(self, args: list[str], cert: str | None = None, key: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        cmd = [*self.base, f"--cert={cert or self.cert}", f"--key={key or self.key}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env={"ETCDCTL_API": "3", "PATH": "/usr/local/bin:/usr/bin:/bin"})
        if check and proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise EtcdAuthError(f"etcdctl {' '.join(args[:3])} failed: {last}")
        return proc

    def json(self, args: list[str]) -> dict[str, Any]:
        return json.loads(self.run([*args, "-w", "json"]).stdout or "{}")

    def current(self, probe_cert: str, probe_key: str, roles: list[str],
                users: list[str]) -> dict[str, Any]:
        probe = self.run(["get", "--limit=1", "--keys-only", "/"], probe_cert, probe_key,
                         check=False)
        if probe.returncode == 0:
            enabled = False
        elif DENIED in probe.stderr:
            enabled = True
        else:
            last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
            raise EtcdAuthError(f"etcd does not answer the probe: {last}")
        have_roles = set(self.json(["role", "list"]).get("roles") or [])
        have_users = set(self.json(["user", "list"]).get("users") or [])
        out: dict[str, Any] = {"enabled": enabled, "roles": {}, "users": {}}
        for role in roles:
            if role in have_roles:
                perms = self.json(["role", "get", role]).get("perm") or []
                out["roles"][role] = {p for p in map(_perm_of, perms) if p}
        for user in users:
            if user in have_users:
                out["users"][user] = set(self.json(["user", "get", user]).get("roles") or [])
        return out

    def wait_quorum(self, wait: float, interval: float = 2.0) -> None:
        deadline = time.monotonic() + wait
        while True:
            proc = self.run(["endpoint", "health", "--cluster"], check=False)
            if proc.returncode == 0:
                return
            if time.monotonic() >= deadline:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise EtcdAuthError(
                    f"etcd has no quorum after {wait:.0f}s ({last}); start the other "
                    "members (state.apply on them) and apply again")
            time.sleep(interval)


def auth_enabled(name: str, endpoints: str, cacert: str, cert: str, key: str,
                 probe_cert: str, probe_key: str, users: list[dict[str, Any]],
                 roles: dict[str, list[dict[str, str]]], etcdctl: str = "etcdctl",
                 wait: float = 120) -> dict[str, Any]:
    ret: dict[str, Any] = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        want_roles = wanted_permissions(roles)
        want_users = {}
        for i, user in enumerate(users or []):
            if not isinstance(user, dict) or not user.get("name"):
                raise EtcdAuthError(f"etcd:server:auth:users:{i}: needs name and roles")
            want_users[str(user["name"])] = set(user.get("roles") or [])
        ctl = _Etcdctl(etcdctl, endpoints, cacert, cert, key)
        ctl.wait_quorum(wait)
        current = ctl.current(probe_cert, probe_key, sorted(want_roles), sorted(want_users))
        cmds = plan(current, want_roles, want_users)
        if not cmds:
            ret["comment"] = (f"etcd auth is enabled with the model's {len(want_roles)} roles "
                              f"and {len(want_users)} users")
            return ret
        steps = [" ".join(c) for c in cmds]
        if __opts__.get("test"):  # type: ignore[name-defined]  # noqa: F821
            ret.update(result=None, comment=f"would run {len(cmds)} etcdctl commands",
                       changes={"etcdctl": steps})
            return ret
        for cmd in cmds:
            ctl.run(cmd)
        ret.update(changes={"etcdctl": steps},
                   comment=f"ran {len(cmds)} etcdctl commands; auth is enabled")
    except EtcdAuthError as exc:
        ret.update(result=False, comment=str(exc))
    return ret
