"""The image plan: which images a release must build, from content digests of their inputs.

An image's *inputs digest* is a sha256 over everything it is built from, in five parts:

- ``context``: the build context tar exactly as it is sent (context.py makes it
  byte-for-byte reproducible);
- ``pillar``: the pillar subtrees baked into it (``ImageDef.pillar``, canonical JSON);
- ``base``: the image IDs of the images its Dockerfile builds FROM (the ``FROM ${ARG}``
  lines, resolved through the build args: the base or openstack-base image and the
  Salt image of the render stage), as the Docker engine reports them;
- ``constraints``: images/openstack-base/constraints/<release>.txt for an OpenStack
  image (empty for the others);
- ``args``: the build args.

`images build` writes the digest into the image as the label ``io.stacksalt.inputs-digest``
and each part as ``io.stacksalt.inputs.<part>``. The plan asks the deployment's registry
(Docker Registry HTTP API v2) for the tag's image config and compares its labels:
``reuse`` (same digest), ``build`` with reason ``new`` (no such tag), ``changed <parts>``
or ``unlabelled``. A registry that does not answer or refuses the login is an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from stacksalt.images import releases
from stacksalt.images.context import Context
from stacksalt.images.definitions import ImageDef
from stacksalt.images.errors import ImagesError

PARTS = ("context", "pillar", "base", "constraints", "args")
LABEL_DIGEST = "io.stacksalt.inputs-digest"
LABEL_PART = "io.stacksalt.inputs."
# the per-registry CA the Docker engine trusts (what `lab up` installs for the lab's registry)
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join((MANIFEST_V2, OCI_MANIFEST, MANIFEST_LIST, OCI_INDEX))
TIMEOUT = 15
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.I | re.M)
_ARG_REF = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")

BaseId = Callable[[str], str]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


@dataclass(frozen=True)
class Inputs:
    digest: str
    parts: dict[str, str]
    bases: dict[str, str]  # image built FROM -> its image ID

    def labels(self) -> dict[str, str]:
        out = {LABEL_DIGEST: self.digest}
        out.update({LABEL_PART + p: d for p, d in self.parts.items()})
        return out


def from_images(dockerfile: str, args: dict[str, str]) -> list[str]:
    """The images a Dockerfile builds FROM (build args resolved; its own stages left out)."""
    stages: set[str] = set()
    out: list[str] = []
    for m in _FROM.finditer(dockerfile):
        ref, stage = m.group(1), m.group(2)
        arg = _ARG_REF.match(ref)
        if arg:
            image = args.get(arg.group(1))
            if image is None:
                raise ImagesError(f"Dockerfile: FROM {ref} names the build arg "
                                  f"{arg.group(1)}, which the build does not set")
        elif ref.lower() in stages or ref == "scratch":
            image = None
        else:
            image = ref
        if image and image not in out:
            out.append(image)
        if stage:
            stages.add(stage.lower())
    return out


def inputs(image: ImageDef, context: Context, args: dict[str, str], base_id: BaseId,
           root: Path | None = None) -> Inputs:
    """The inputs digest of one image and its parts."""
    dockerfile = context.files.get("Dockerfile")
    if dockerfile is None:
        raise ImagesError(f"image {image.name}: its context has no Dockerfile")
    bases = {tag: base_id(tag) for tag in from_images(dockerfile[0].decode(), args)}
    constraints = (releases.constraints_file(image.release, root).read_bytes()
                   if image.release else b"")
    parts = {
        "context": sha256(context.tar()),
        "pillar": sha256(canonical(image.pillar)),
        "base": sha256(canonical(bases)),
        "constraints": sha256(constraints),
        "args": sha256(canonical(args)),
    }
    return Inputs(sha256(canonical(parts)), parts, bases)


def default_ca(registry: str) -> Path | None:
    """/etc/docker/certs.d/<registry>/ca.crt when the host has it (Docker's per-registry
    trust), else None: the system's trust store."""
    path = DOCKER_CERTS_DIR / registry / "ca.crt"
    return path if path.is_file() else None


class RegistryAPI:
    """The parts of the Docker Registry HTTP API v2 the plan reads (basic auth)."""

    def __init__(self, registry: str, auth: dict[str, str] | None, *,
                 plain_http: bool = False, ca: Path | None = None,
                 timeout: float = TIMEOUT) -> None:
        self.registry = registry
        self.user = (auth or {}).get("username")
        self.base = f"{'http' if plain_http else 'https'}://{registry}/v2/"
        self.session = requests.Session()
        if auth:
            self.session.auth = (auth["username"], auth["password"])
        ca = ca or default_ca(registry)
        # per request, not session.verify: requests lets REQUESTS_CA_BUNDLE override a
        # session's verify (psf/requests#4726, #3829)
        self.verify: str | bool = str(ca) if ca else True
        self.ca = ca
        self.timeout = timeout

    def _get(self, path: str, accept: str | None = None) -> requests.Response:
        url = self.base + path
        try:
            resp = self.session.get(url, headers={"Accept": accept} if accept else {},
                                    timeout=self.timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            trust = f"the CA {self.ca}" if self.ca else "the system's CAs"
            raise ImagesError(
                f"registry {self.registry}: TLS verification failed with {trust} "
                f"({type(exc).__name__}); put the registry's CA in "
                f"{DOCKER_CERTS_DIR}/{self.registry}/ca.crt (stacksalt lab up does for the lab)"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ImagesError(
                f"registry {self.registry} does not answer ({url}: {type(exc).__name__}); "
                "start it or fix docker:build:registry / --registry; nothing was planned"
            ) from None
        if resp.status_code in (401, 403):
            who = f"user {self.user}" if self.user else "anonymous access"
            raise ImagesError(
                f"registry {self.registry} refused {who} (HTTP {resp.status_code} on {path}); "
                "check docker:registry:user and the password secret"
            )
        return resp

    def ping(self) -> None:
        """GET /v2/: the registry answers and accepts the login."""
        resp = self._get("")
        if resp.status_code != 200:
            raise ImagesError(f"registry {self.registry}: GET /v2/ answered HTTP "
                              f"{resp.status_code}; is it a Docker registry (API v2)?")

    def labels(self, repository: str, tag: str) -> dict[str, str] | None:
        """config.Labels of repository:tag; None when the registry has no such tag."""
        resp = self._get(f"{repository}/manifests/{tag}", ACCEPT)
        if resp.status_code == 404:
            return None
        manifest = self._json(resp, f"manifest {repository}:{tag}")
        if manifest.get("mediaType") in (MANIFEST_LIST, OCI_INDEX) or "manifests" in manifest:
            entries = manifest.get("manifests") or []
            chosen = next((m for m in entries if (m.get("platform") or {}).get("os") == "linux"
                           and (m.get("platform") or {}).get("architecture") == "amd64"),
                          entries[0] if entries else None)
            if chosen is None:
                raise ImagesError(f"registry {self.registry}: {repository}:{tag} is an "
                                  "empty manifest list")
            resp = self._get(f"{repository}/manifests/{chosen['digest']}", ACCEPT)
            manifest = self._json(resp, f"manifest {repository}@{chosen['digest']}")
        digest = (manifest.get("config") or {}).get("digest")
        if not digest:
            raise ImagesError(f"registry {self.registry}: manifest {repository}:{tag} has no "
                              "config (schema 1?); push it again with a current Docker")
        config = self._json(self._get(f"{repository}/blobs/{digest}"),
                            f"config blob {digest} of {repository}:{tag}")
        return dict((config.get("config") or {}).get("Labels") or {})

    def _json(self, resp: requests.Response, what: str) -> dict[str, Any]:
        if resp.status_code != 200:
            raise ImagesError(f"registry {self.registry}: GET {what} answered HTTP "
                              f"{resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise ImagesError(f"registry {self.registry}: {what} is not JSON") from None
        if not isinstance(data, dict):
            raise ImagesError(f"registry {self.registry}: {what} is not a JSON object")
        return data


@dataclass
class Decision:
    image: str
    tag: str
    action: str  # "reuse" or "build"
    reason: str  # "" (reuse), "new", "changed <parts>", "unlabelled"
    inputs: Inputs
    changed: list[str] = field(default_factory=list)

    @property
    def build(self) -> bool:
        return self.action == "build"

    def as_dict(self) -> dict[str, Any]:
        return {"image": self.image, "tag": self.tag, "decision": self.action,
                "reason": self.reason, "changed": self.changed,
                "inputs_digest": self.inputs.digest, "inputs": self.inputs.parts,
                "bases": self.inputs.bases}


def decide(image: ImageDef, ins: Inputs, labels: dict[str, str] | None) -> Decision:
    """Compare the image's inputs with the labels of the tag in the registry."""
    def made(action: str, reason: str, changed: list[str] | None = None) -> Decision:
        return Decision(image.name, image.tag, action, reason, ins, changed or [])

    if labels is None:
        return made("build", "new")
    if LABEL_DIGEST not in labels:
        return made("build", "unlabelled")
    if labels[LABEL_DIGEST] == ins.digest:
        return made("reuse", "")
    known = [p for p in PARTS if LABEL_PART + p in labels]
    changed = [p for p in known if labels[LABEL_PART + p] != ins.parts[p]]
    if not known:
        return made("build", "changed (the registry's image has no per-part labels)")
    return made("build", f"changed {', '.join(changed)}" if changed else "changed", changed)


def decisions(images: list[ImageDef], all_inputs: dict[str, Inputs],
              api_for: Callable[[str], RegistryAPI]) -> list[Decision]:
    """One decision per image (its registry asked for repository:version)."""
    out = []
    for d in images:
        api = api_for(d.registry)
        labels = api.labels(f"{d.namespace}/{d.name}", d.version)
        out.append(decide(d, all_inputs[d.name], labels))
    return out


def table(deployment: str, plan: list[Decision]) -> Table:
    t = Table(title=f"image plan of {deployment}")
    for col in ("image", "tag", "decision", "reason", "inputs"):
        t.add_column(col, no_wrap=col != "reason")
    for p in plan:
        t.add_row(p.image, p.tag.rsplit(":", 1)[1], p.action, p.reason,
                  p.inputs.digest.removeprefix("sha256:")[:12])
    return t


def show(console: Console, deployment: str, plan: list[Decision], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"deployment": deployment, "images": [p.as_dict() for p in plan]},
                         indent=2, sort_keys=True))
    else:
        console.print(table(deployment, plan))
