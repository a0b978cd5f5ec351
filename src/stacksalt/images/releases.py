"""images/openstack-base/releases.yml and constraints/<release>.txt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from stacksalt.images.errors import ImagesError
from stacksalt.paths import images_dir

BASE_SOURCE = "openstack-base"
BASE_REPOSITORY = "stacksalt/openstack-base"


def base_dir(root: Path | None = None) -> Path:
    return images_dir(root) / BASE_SOURCE


def releases_file(root: Path | None = None) -> Path:
    return base_dir(root) / "releases.yml"


def constraints_file(release: str, root: Path | None = None) -> Path:
    return base_dir(root) / "constraints" / f"{release}.txt"


def base_tag(release: str) -> str:
    return f"{BASE_REPOSITORY}:{release}"


@dataclass(frozen=True)
class Release:
    name: str
    pins: tuple[str, ...]  # top-level pins + the common packages, as pip arguments

    @property
    def pins_arg(self) -> str:
        return " ".join(self.pins)


def load(root: Path | None = None) -> dict[str, Release]:
    """Every release of releases.yml."""
    path = releases_file(root)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ImagesError(f"{path}: cannot read it: {exc}") from exc
    if not isinstance(data, dict):
        raise ImagesError(f"{path}: expected a mapping release -> {{pins}}")
    common = data.get("common") or []
    if not isinstance(common, list) or not all(isinstance(c, str) for c in common):
        raise ImagesError(f"{path}: key 'common' must be a list of package names")
    out: dict[str, Release] = {}
    for name, spec in data.items():
        if name == "common":
            continue
        pins = spec.get("pins") if isinstance(spec, dict) else None
        if not isinstance(pins, dict) or not pins:
            raise ImagesError(f"{path}: key '{name}:pins' must map package -> version")
        out[str(name)] = Release(
            name=str(name),
            pins=tuple(f"{pkg}=={ver}" for pkg, ver in pins.items()) + tuple(common),
        )
    return out


def get(release: str, model_key: str = "", root: Path | None = None) -> Release:
    """The release, and a clear error if releases.yml or its constraints file lacks it."""
    known = load(root)
    where = f" (model key {model_key})" if model_key else ""
    if release not in known:
        raise ImagesError(
            f"release '{release}'{where} is not in {releases_file(root)} "
            f"(known: {', '.join(sorted(known))}); add its pins there, then run "
            f"'stacksalt images freeze {release}'"
        )
    return known[release]


def require_constraints(release: str, model_key: str = "", root: Path | None = None) -> Path:
    """constraints/<release>.txt, or an error naming the file and the model key."""
    get(release, model_key, root)
    path = constraints_file(release, root)
    if not path.is_file() or not path.read_text().strip():
        where = f" (model key {model_key})" if model_key else ""
        raise ImagesError(
            f"{path} is missing: release '{release}'{where} has no constraints file; "
            f"make it with 'stacksalt images freeze {release}' and commit it"
        )
    return path
