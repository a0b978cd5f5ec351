"""`stacksalt lab up|down|status`: the deployment's nodes as containers, converged by Salt.

Order of `up`: model check (refuse a broken model before anything starts), secrets, Docker
engine, images, network, the salt master (bootstrapped with `salt-call --local` applying the
same `salt.master` state a real cfg01 bootstrap applies), the minions, then
`state.apply` on the master (it holds the CAs) and `salt '*' state.apply`.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import time

import yaml
from docker.types import Mount
from rich.console import Console
from rich.table import Table

from stacksalt import engine, paths, secrets
from stacksalt.deployment import Deployment
from stacksalt.errors import StacksaltError
from stacksalt.lab import containers, dockerd, images, pipeline, registry_trust, summary
from stacksalt.lab.plan import LabNode, LabPlan, plan

MINION_WAIT_S = 180
# salt's --timeout for short commands (test.ping)
SALT_CLI_TIMEOUT_S = 60
# how long one state.apply may take on the slowest node before it counts as not returned
APPLY_TIMEOUT_S = 1200
RESTART_WAIT_S = 120
BOOTSTRAP_DIR = "/etc/salt/bootstrap"


class LabError(StacksaltError):
    pass


def _step(console: Console, t0: float, msg: str) -> None:
    console.print(f"[bold cyan][{time.monotonic() - t0:6.1f}s][/] {msg}")


def _put_file(container, path: str, content: bytes, mode: int = 0o644) -> None:
    directory, _, name = path.rpartition("/")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(content), mode, int(time.time())
        tar.addfile(info, io.BytesIO(content))
    containers.exec_run(container, ["mkdir", "-p", directory])
    container.put_archive(directory, buf.getvalue())


def _put_dir(container, src, dest: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(src), arcname=".", filter=_no_sockets)
    containers.exec_run(container, ["mkdir", "-p", dest])
    container.put_archive(dest, buf.getvalue())
    containers.exec_run(container, ["chown", "-R", "root:root", dest])
    containers.exec_run(container, ["chmod", "-R", "go-rwx", dest])


def _no_sockets(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return info if (info.isfile() or info.isdir()) else None


def _salt(master, *args: str, timeout: int = SALT_CLI_TIMEOUT_S) -> tuple[int, str]:
    res = master.exec_run(["salt", "--out=json", "--static", f"--timeout={timeout}", *args])
    return res.exit_code, res.output.decode(errors="replace")


def _start(client, lab: LabPlan, node: LabNode, mounts=None):
    return containers.start_node(
        client,
        image=images.SALT_IMAGE,
        name=node.container_name(lab.deployment),
        hostname=node.hostname,
        domain=node.domain,
        network=lab.network_name,
        ipv4=node.address,
        mounts=mounts,
        labels=lab.labels(),
        sysctls=node.sysctls,
    )


def _bootstrap_minion(container, node: LabNode, master_address: str) -> None:
    """What a node's provisioning (PXE/cloud-init) does: name the minion, point it at the
    master, start it. The salt formula takes the configuration over from there."""
    state = containers.exec_run(container, ["systemctl", "is-active", "salt-minion"], check=False)
    if state.strip() == "active":
        return
    _put_file(container, "/etc/salt/minion_id", node.minion_id.encode())
    conf = containers.exec_run(
        container, ["cat", "/etc/salt/minion.d/stacksalt.conf"], check=False
    )
    if "master:" not in conf:
        _put_file(
            container,
            "/etc/salt/minion.d/stacksalt.conf",
            yaml.safe_dump({"master": master_address}).encode(),
        )
    containers.exec_run(container, ["systemctl", "enable", "--now", "salt-minion"])


def _bootstrap_master(container, lab: LabPlan) -> None:
    """cfg01's bootstrap: `salt-call --local state.apply salt.master` against the model
    at the master's base dir (a symlink into the mounted checkout), then its own minion."""
    base = lab.master_base_dir
    _put_dir(container, secrets.keyring_dir(lab.deployment), "/etc/salt/gpgkeys")
    active = containers.exec_run(container, ["systemctl", "is-active", "salt-master"], check=False)
    if active.strip() != "active":
        conf = {
            "id": lab.master.minion_id,
            "file_client": "local",
            "file_roots": {"base": [f"{base}/{paths.PRODUCT_LINK}/formulas"]},
            **engine.pillar_options(f"{base}/{paths.PRODUCT_LINK}/formulas", f"{base}/pillar",
                                    f"{base}/reclass"),
            "gpg_keydir": "/etc/salt/gpgkeys",
        }
        _put_file(container, f"{BOOTSTRAP_DIR}/minion", yaml.safe_dump(conf).encode())
        res = container.exec_run(
            ["salt-call", "--local", "-c", BOOTSTRAP_DIR, "--retcode-passthrough",
             "--out=json", "state.apply", "salt.master"]
        )
        if res.exit_code != 0:
            raise LabError(
                "bootstrapping the salt master failed (salt-call --local state.apply "
                f"salt.master):\n{res.output.decode(errors='replace')[-4000:]}"
            )
    _bootstrap_minion(container, lab.master, lab.master.address)


def _wait_minions(master, expected: list[str], console: Console, t0: float) -> None:
    deadline = time.monotonic() + MINION_WAIT_S
    answered: set[str] = set()
    while time.monotonic() < deadline:
        code, out = _salt(master, "*", "test.ping", timeout=10)
        data = summary.json_from(out)
        answered = {m for m, v in data.items() if v is True}
        if set(expected) <= answered:
            _step(console, t0, f"all {len(expected)} minions answer test.ping")
            return
        time.sleep(2)
    missing = sorted(set(expected) - answered)
    raise LabError(
        f"minions did not answer within {MINION_WAIT_S}s: {', '.join(missing)}; "
        "look at `journalctl -u salt-minion` in their containers"
    )


def wait_salt_restarts(client, lab: LabPlan) -> None:
    """Wait until no node has a scheduled Salt restart pending (salt formula: a changed
    master/minion configuration restarts the service just after the run). A job published
    while a minion restarts is lost, so the next run must wait for these."""
    deadline = time.monotonic() + RESTART_WAIT_S
    names = [n.container_name(lab.deployment) for n in lab.nodes]
    while True:
        pending = []
        for name in names:
            out = containers.exec_run(
                client.containers.get(name),
                ["systemctl", "list-units", "stacksalt-restart-*", "--all", "--no-legend",
                 "--state=active,activating"], check=False)
            if out.strip():
                pending.append(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise LabError(f"Salt restarts still pending after {RESTART_WAIT_S}s on "
                           f"{', '.join(pending)}: look at `journalctl -u 'stacksalt-restart-*'`")
        time.sleep(1)


def apply(master, target: str, expected: list[str], timeout: float = APPLY_TIMEOUT_S,
          progress=None) -> dict[str, summary.NodeResult]:
    """`state.apply` on target: published as a job, then read from the master's job cache
    until every expected minion has returned. (The salt CLI's own wait gives up on a minion
    too busy to answer its find_job probe in time; the job cache does not guess.)"""
    args = ["-L", target] if "," in target else [target]
    res = master.exec_run(["salt", "--async", *args, "state.apply"])
    out = res.output.decode(errors="replace")
    match = re.search(r"job ID: (\d+)", out)
    if res.exit_code != 0 or not match:
        raise LabError(f"could not publish state.apply to {target}: {out.strip()}")
    jid = match.group(1)
    deadline = time.monotonic() + timeout
    returned: dict = {}
    while True:
        look = master.exec_run(["salt-run", "--out=json", "jobs.lookup_jid", jid])
        returned = summary.json_from(look.output.decode(errors="replace"))
        missing = sorted(set(expected) - set(returned))
        if progress:
            progress(len(expected) - len(missing), len(expected))
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(3)
    return summary.parse(returned, expected)


# Salt 3008.3 bug: x509_v2's inner state.single builds a tornado IOLoop while another
# thread of the minion changes tornado's loop registry ("dictionary keys changed during
# iteration"). It hits a first converge, where many certificates are issued at once; the
# state did nothing, so applying again on the affected nodes is safe. Retried once, only
# for a run whose every failure is that race or a requisite of it.
SALT_LOOP_RACE = "dictionary keys changed during iteration"


def _only_salt_loop_race(result: summary.NodeResult) -> bool:
    texts = result.failures
    return (bool(texts) and any(SALT_LOOP_RACE in t for t in texts)
            and all(SALT_LOOP_RACE in t or "requisite failed" in t for t in texts))


def apply_retrying_salt_race(master, target: str, expected: list[str], console: Console,
                             progress=None) -> dict[str, summary.NodeResult]:
    """apply(); nodes that failed only with the Salt loop race are applied once more."""
    results = apply(master, target, expected, progress=progress)
    hit = sorted(m for m, r in results.items() if _only_salt_loop_race(r))
    if hit:
        console.print(f"[yellow]Salt 3008.3 loop race ({SALT_LOOP_RACE!r}) on "
                      f"{', '.join(hit)}: applying those nodes once more[/yellow]")
        again = apply(master, ",".join(hit), hit)
        results.update(again)
    return results


def print_summary(console: Console, title: str, results: dict[str, summary.NodeResult]) -> None:
    table = Table(title=title)
    for col in ("node", "ok", "changed", "failed", "duration"):
        table.add_column(col, justify="left" if col == "node" else "right")
    for minion, r in sorted(results.items()):
        style = "red" if r.failed else ("yellow" if r.changed else "green")
        table.add_row(minion, str(r.ok), str(r.changed), str(r.failed),
                      f"{r.duration_s:.1f}s", style=style)
    console.print(table)
    for r in results.values():
        for f in r.failures[:10]:
            console.print(f"[red]{r.minion_id}: {f}[/]")


# where the lab's master mounts the stacksalt checkout (read-only); its base dir is a
# symlink into it, as a real master's base dir is a symlink the pipeline moves
CHECKOUT_MOUNT = "/srv/stacksalt-checkout"


def master_mount(lab: LabPlan) -> tuple[str, str]:
    """(host folder, folder on the master) of the bind mount that holds the deployment
    repository with its stacksalt/ resolving inside the mount: the repository itself when
    stacksalt is a submodule in it, else the enclosing checkout of an example under
    deployments/."""
    root = paths.deployment_root(lab.deployment)
    product = paths.product_root(lab.deployment)
    if product.is_relative_to(root) or not root.is_relative_to(product):
        return str(root), CHECKOUT_MOUNT
    return str(product), CHECKOUT_MOUNT


def base_dir_target(lab: LabPlan) -> str:
    """Where the master's base dir (salt:master:base_dir) points: the deployment repository
    inside the mount."""
    root = paths.deployment_root(lab.deployment)
    host, mounted = master_mount(lab)
    rel = root.relative_to(host).as_posix()
    return mounted if rel == "." else f"{mounted}/{rel}"


def link_base_dir(container, lab: LabPlan) -> None:
    """Point the master's base dir at the mounted checkout (what `lab up` serves; the
    pipeline moves the same link to the revisions it deploys)."""
    base, target = lab.master_base_dir, base_dir_target(lab)
    tmp = f"{base}.lab-up.new"
    containers.exec_run(container, ["sh", "-c", 'set -e; [ ! -e "$1" ] || [ -L "$1" ] || '
                                    '{ echo "$1 is a real directory" >&2; exit 1; }; '
                                    'mkdir -p "$(dirname "$1")"; ln -sfn "$2" "$3"; '
                                    'mv -T "$3" "$1"', "sh", base, target, tmp])


def _stale_reason(client, lab: LabPlan, mount: tuple[str, str], image_id: str) -> str | None:
    """Why the existing lab cannot be reused as it is (None if it can, or if there is none).

    A master that mounts another checkout would converge the nodes from the wrong model;
    a container from an older image misses what the image now carries. Minions keep the
    master's key, so a new master means new minions too: the lab is made again whole."""
    selector = {"label": [f"io.stacksalt.deployment={lab.deployment}"]}
    for c in client.containers.list(all=True, filters=selector):
        if c.image.id != image_id:
            return f"{c.name} runs an older image than {images.SALT_IMAGE}"
        if c.name == lab.master.container_name(lab.deployment):
            sources = {m.get("Destination"): m.get("Source") for m in c.attrs.get("Mounts", [])}
            repo, target = mount
            source = sources.get(target)
            if source != repo:
                return f"{c.name} serves the model of {source}, not of this checkout ({repo})"
            # same path, but maybe a checkout since deleted and cloned again
            if c.status == "running":
                seen = c.exec_run(["stat", "-c", "%i", target]).output.decode()
                if seen.strip() != str(os.stat(repo).st_ino):
                    return f"{c.name} mounts an earlier checkout that was at {repo}"
    return None


def up(deployment: str = "lab", console: Console | None = None) -> int:
    console = console or Console()
    t0 = time.monotonic()
    _step(console, t0, f"model check of deployment {deployment}")
    dep, errors = Deployment.check(deployment)  # the one render every step below reads
    if errors:
        for e in errors:
            console.print(f"[red]{e}[/]")
        console.print(f"[red]{len(errors)} model error(s): nothing was started. "
                      f"Fix them and run `stacksalt lab up` again.[/]")
        return 1
    lab = plan(dep)
    added, kept = secrets.generate(deployment, dep)
    _step(console, t0, f"secrets: {len(added)} generated, {len(kept)} kept "
                       f"({secrets.secrets_file(deployment).relative_to(paths.deployment_root(deployment))})")
    client = dockerd.ensure_engine(console)
    images.ensure_base_image(client, console)
    salt_image = images.ensure_salt_image(client, console)
    mount = master_mount(lab)
    stale = _stale_reason(client, lab, mount, client.images.get(salt_image).id)
    if stale:
        _step(console, t0, f"[yellow]{stale}: making the lab again[/]")
        down(deployment, console=console)
    containers.ensure_network(client, lab.network_name, lab.subnet, lab.gateway, lab.labels())
    _step(console, t0, f"network {lab.network_name} {lab.subnet}")

    master = _start(client, lab, lab.master,
                    mounts=[Mount(mount[1], mount[0], type="bind", read_only=True)])
    link_base_dir(master, lab)
    _step(console, t0, f"{lab.master.minion_id}: container up, {lab.master_base_dir} -> "
                       f"{base_dir_target(lab)}; bootstrapping the salt master")
    _bootstrap_master(master, lab)
    for node in lab.minions:
        c = _start(client, lab, node)
        _bootstrap_minion(c, node, lab.master.address)
        _step(console, t0, f"{node.minion_id}: container up, salt-minion started")
    expected = [n.minion_id for n in lab.nodes]
    wait_salt_restarts(client, lab)
    _wait_minions(master, expected, console, t0)

    _step(console, t0, f"state.apply on {lab.master.minion_id} (salt master, CAs)")
    first = apply_retrying_salt_race(master, lab.master.minion_id, [lab.master.minion_id],
                                     console)
    if any(r.failed for r in first.values()):
        print_summary(console, "state.apply on the salt master", first)
        return 1
    wait_salt_restarts(client, lab)
    _wait_minions(master, expected, console, t0)
    _step(console, t0, "salt '*' state.apply")
    shown = {"n": -1}

    def show(done: int, total: int) -> None:
        if done != shown["n"]:
            shown["n"] = done
            _step(console, t0, f"  {done}/{total} nodes returned")

    results = apply_retrying_salt_race(master, "*", expected, console, progress=show)
    wait_salt_restarts(client, lab)
    _wait_minions(master, expected, console, t0)
    print_summary(console, f"salt '*' state.apply ({deployment})", results)
    failed = sum(r.failed for r in results.values())
    _step(console, t0, f"lab {deployment}: {len(expected)} nodes, {failed} failed states")
    trusted = registry_trust.install(client, lab, console)
    if failed or not trusted:
        return 1
    pipeline.install(client, lab, console)
    return 0


def down(deployment: str = "lab", remove_images: bool = False,
         console: Console | None = None) -> int:
    """Remove only what the lab created: containers and network labelled with it."""
    console = console or Console()
    client = dockerd.ensure_engine(console)
    pipeline.remove(deployment, console)
    registry_trust.remove(deployment, console)
    selector = {"label": [f"io.stacksalt.deployment={deployment}", "io.stacksalt.lab=true"]}
    for c in client.containers.list(all=True, filters=selector):
        c.remove(force=True, v=True)
        console.print(f"removed container {c.name}")
    for n in client.networks.list(filters=selector):
        n.remove()
        console.print(f"removed network {n.name}")
    if remove_images:
        for tag in (images.SALT_IMAGE, images.BASE_IMAGE):
            if images.image_exists(client, tag):
                client.images.remove(tag)
                console.print(f"removed image {tag}")
    return 0


def status(deployment: str = "lab", console: Console | None = None) -> int:
    console = console or Console()
    client = dockerd.ensure_engine(console)
    selector = {"label": [f"io.stacksalt.deployment={deployment}"]}
    table = Table(title=f"lab {deployment}")
    for col in ("container", "status", "address"):
        table.add_column(col)
    for c in sorted(client.containers.list(all=True, filters=selector), key=lambda c: c.name):
        nets = c.attrs["NetworkSettings"]["Networks"]
        addr = ", ".join(v.get("IPAddress", "") for v in nets.values())
        table.add_row(c.name, c.status, addr)
    console.print(table)
    return 0
