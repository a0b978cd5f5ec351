"""The lab's two images: a debootstrapped Debian base and the Salt node image.

No registry can be pulled from, so the base is made with debootstrap and
`docker import`; the Salt image is built on it from images/salt/Dockerfile.
"""

from __future__ import annotations

import configparser
import filecmp
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import docker
from docker.errors import ImageNotFound
from rich.console import Console

from stacksalt.buildstream import BuildStream
from stacksalt.errors import StacksaltError
from stacksalt.paths import images_dir, repo_root

LAB_LABEL = "io.stacksalt.lab"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = f"stacksalt/base:{SUITE}"
PINNED = ("salt", "kapicorp-reclass", "python-gnupg")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_EXTRA_CAS = "/usr/local/share/ca-certificates/*.crt"
# Where the host's CA bundle is copied inside the build context (git-ignored).
CONTEXT_CA_BUNDLE = Path("files/host-ca-certificates.crt")

APT_CONF = """\
// stacksalt: keep node images small
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
"""
DPKG_NODOCS = """\
# stacksalt: no documentation in node images
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
ROOTFS_CLEANUP = (
    "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb"
    " /usr/share/man/* /usr/share/info/* /var/log/*.log"
    " && find /usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete"
)
SOURCES_LIST = f"""\
deb {MIRROR} {SUITE} main
deb {MIRROR} {SUITE}-updates main
deb {MIRROR}-security {SUITE}-security main
"""


class ImageError(StacksaltError):
    """An image could not be made."""


class _Phases:
    """Prints one line per phase with the seconds since the start."""

    def __init__(self, console: Console, what: str) -> None:
        self.console = console
        self.what = what
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        self.console.print(
            f"[bold]{self.what}[/bold] [{self.elapsed():6.1f}s] {text}", soft_wrap=True
        )


def salt_pins(root: Path | None = None) -> list[str]:
    """The `==` pins of salt, kapicorp-reclass and python-gnupg from setup.cfg."""
    cfg_path = (root or repo_root()) / "setup.cfg"
    cfg = configparser.ConfigParser()
    if not cfg.read(cfg_path):
        raise ImageError(f"cannot read {cfg_path}")
    raw = cfg.get("options", "install_requires", fallback="")
    found: dict[str, str] = {}
    for line in raw.splitlines():
        req = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*==\s*([A-Za-z0-9_.+!-]+)$", req)
        if m:
            found[m.group(1).lower().replace("_", "-")] = f"{m.group(1)}=={m.group(2)}"
    missing = [name for name in PINNED if name not in found]
    if missing:
        raise ImageError(
            f"{cfg_path}: install_requires has no '==' pin for {', '.join(missing)}; "
            "pin them there (it is the one place their versions are chosen)"
        )
    return [found[name] for name in PINNED]


def _salt_version() -> str:
    """Salt's pinned version (falls back to the installed one outside a checkout)."""
    try:
        return salt_pins()[0].split("==", 1)[1]
    except RuntimeError:
        try:
            return metadata.version("salt")
        except metadata.PackageNotFoundError:
            return "unknown"


SALT_IMAGE = f"stacksalt/salt:{_salt_version()}"


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    """True if the engine has an image with this tag."""
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run a command; raise ImageError with its output tail on failure."""
    proc = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-25:])
        raise ImageError(f"{what} failed ({' '.join(argv)}, exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _ensure_debootstrap(phases: _Phases) -> None:
    """Install debootstrap with apt if it is missing."""
    if shutil.which("debootstrap"):
        return
    phases.say("debootstrap not found, installing it with apt")
    _run(["apt-get", "update"], "apt-get update")
    _run(
        ["apt-get", "install", "-y", "debootstrap"],
        "installing debootstrap",
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )


def _configure_rootfs(rootfs: Path) -> None:
    """Host CAs, small-apt config, sources, and an empty apt state."""
    cas = sorted(glob.glob(HOST_EXTRA_CAS))
    dest = rootfs / "usr/local/share/ca-certificates"
    dest.mkdir(parents=True, exist_ok=True)
    for ca in cas:
        shutil.copy2(ca, dest / Path(ca).name)
    _run(["chroot", str(rootfs), "update-ca-certificates"], "update-ca-certificates (chroot)")
    (rootfs / "etc/apt/apt.conf.d/90stacksalt").write_text(APT_CONF)
    (rootfs / "etc/dpkg/dpkg.cfg.d/90stacksalt-nodocs").write_text(DPKG_NODOCS)
    (rootfs / "etc/apt/sources.list").write_text(SOURCES_LIST)
    # Clean up inside the chroot so that no absolute symlink can lead outside it.
    _run(["chroot", str(rootfs), "sh", "-c", ROOTFS_CLEANUP], "cleaning the rootfs (chroot)")
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    # Docker supplies these at run time; an empty machine-id makes systemd
    # generate one per container.
    for name in ("etc/hostname", "etc/resolv.conf"):
        (rootfs / name).unlink(missing_ok=True)
    (rootfs / "etc/machine-id").write_text("")


def ensure_base_image(
    client: docker.DockerClient, console: Console, rebuild: bool = False
) -> str:
    """Return BASE_IMAGE, making it with debootstrap + docker import if needed."""
    if not rebuild and image_exists(client, BASE_IMAGE):
        console.print(f"[bold]base image[/bold]: reusing {BASE_IMAGE}")
        return BASE_IMAGE
    phases = _Phases(console, "base image")
    _ensure_debootstrap(phases)
    workdir = Path(tempfile.mkdtemp(prefix="stacksalt-base-", dir="/var/tmp"))
    try:
        rootfs = workdir / "rootfs"
        phases.say(f"debootstrap --variant=minbase {SUITE} from {MIRROR}")
        with console.status("debootstrap running"):
            _run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=ca-certificates",
                    SUITE,
                    str(rootfs),
                    MIRROR,
                ],
                "debootstrap",
            )
        phases.say("configuring rootfs (host CAs, apt without recommends/docs)")
        _configure_rootfs(rootfs)
        tarball = workdir / "rootfs.tar"
        phases.say("packing rootfs")
        _run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."],
            "tar of the rootfs",
        )
        repository, tag = BASE_IMAGE.split(":", 1)
        phases.say(f"docker import as {BASE_IMAGE} ({tarball.stat().st_size >> 20} MiB)")
        client.api.import_image(
            src=str(tarball),
            repository=repository,
            tag=tag,
            changes=[f"LABEL {LAB_LABEL}=true", 'CMD ["/bin/bash"]'],
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    image = client.images.get(BASE_IMAGE)
    phases.say(f"done: {image.short_id}, {image.attrs['Size'] / 1e6:.0f} MB")
    return BASE_IMAGE


def _sync_ca_bundle(context: Path) -> None:
    """Copy the host CA bundle into the build context, only if its content changed."""
    if not HOST_CA_BUNDLE.is_file():
        raise ImageError(f"{HOST_CA_BUNDLE} is missing: apt-get install ca-certificates")
    dest = context / CONTEXT_CA_BUNDLE
    if dest.is_file() and filecmp.cmp(HOST_CA_BUNDLE, dest, shallow=False):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HOST_CA_BUNDLE, dest)


def ensure_salt_image(client: docker.DockerClient, console: Console) -> str:
    """Build SALT_IMAGE from images/salt (a no-op cache hit when unchanged); return its tag."""
    root = repo_root()
    pins = salt_pins(root)
    base = ensure_base_image(client, console)
    context = images_dir(root) / "salt"
    _sync_ca_bundle(context)
    phases = _Phases(console, "salt image")
    phases.say(f"building {SALT_IMAGE} with {' '.join(pins)}")
    image_id = None
    with console.status("building") as status:
        def step_done(step: str, cached: bool, took: float, is_from: bool) -> None:
            how = "[dim]base[/dim]" if is_from else \
                ("[green]cached[/green]" if cached else f"{took:.1f}s")
            phases.say(f"{step[:110]}  {how}")

        log = BuildStream(step_done, lambda text: status.update(text[:120]))
        for chunk in client.api.build(
            path=str(context),
            tag=SALT_IMAGE,
            rm=True,
            forcerm=True,
            decode=True,
            buildargs={"BASE_IMAGE": base, "SALT_PINS": " ".join(pins)},
            labels={LAB_LABEL: "true", f"{LAB_LABEL}.salt-pins": " ".join(pins)},
        ):
            error = log.feed(chunk)
            if error:
                tail = "\n".join(log.tail)
                raise ImageError(
                    f"building {SALT_IMAGE} failed: {error}\n"
                    f"last build output:\n{tail}\n"
                    "fix images/salt/Dockerfile (or the network / CA trust) and run again"
                )
        image_id = log.image_id
    image = client.images.get(image_id or SALT_IMAGE)
    phases.say(f"{log.cache_hits}/{log.steps} steps from cache")
    phases.say(f"done: {SALT_IMAGE} = {image.short_id}, {image.attrs['Size'] / 1e6:.0f} MB")
    return SALT_IMAGE
