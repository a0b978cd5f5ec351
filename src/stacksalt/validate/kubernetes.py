"""Validate Kubernetes objects against the API's strict JSON schemas (kubernetes-validate).

``validate(obj, version)`` returns every problem of one object as ``path: message``
strings (empty: valid). Objects of the API server (core, apps, rbac, policy, batch, and
any other group kubernetes-validate ships a schema for) are checked against the strict
schema of that Kubernetes minor version: unknown fields, wrong types and missing
required fields are all errors. Calico objects (``projectcalico.org/v3``) go to
``stacksalt.validate.calico``. Component configuration files that are not API objects
(kubeconfig, KubeletConfiguration, ...) have no published schema: ``COMPONENT_CONFIG``
lists the ones accepted by apiVersion and kind alone (``coverage`` says so, for tests
to report); any other object without a schema is an error.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

CALICO_GROUP = "projectcalico.org"

# Configuration files of Kubernetes components: apiVersion -> kinds. They are read by
# the component (strictly, for most), not by the API server, and have no JSON schema.
COMPONENT_CONFIG: dict[str, set[str]] = {
    "v1": {"Config"},  # kubeconfig
    "kubelet.config.k8s.io/v1beta1": {"KubeletConfiguration", "CredentialProviderConfig"},
    "kubeproxy.config.k8s.io/v1alpha1": {"KubeProxyConfiguration"},
    "kubescheduler.config.k8s.io/v1": {"KubeSchedulerConfiguration"},
    "apiserver.config.k8s.io/v1": {"EncryptionConfiguration", "AdmissionConfiguration"},
    "apiserver.config.k8s.io/v1beta1": {"AuthenticationConfiguration",
                                        "AuthorizationConfiguration"},
    "audit.k8s.io/v1": {"Policy"},
}

MAX_MESSAGE = 300


def group(obj: dict[str, Any]) -> str:
    """The API group of an object ("" for the core group)."""
    api_version = str(obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0]


def _schema_file(api_version: str, kind: str, version: str) -> str:
    # kubernetes-validate's layout: <kind>-<group's first label>-<version>.json
    # (rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1)
    stem = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"kubernetes-json-schema/v{version}-local-strict/{kind.lower()}-{stem}.json"


def schema_version(version: str) -> str:
    """The kubernetes-validate schema set for a Kubernetes version (``1.33.5`` -> 1.33.0)."""
    minor = kv.major_minor(version.removeprefix("v"))
    key = tuple(int(p) for p in minor.split("."))
    fitting = [v for v in kv.all_versions() if tuple(int(p) for p in v.split(".")[:2]) <= key]
    if not fitting:
        raise ValueError(f"kubernetes-validate has no schemas for Kubernetes {version}")
    return fitting[-1]


@lru_cache(maxsize=4)
def _registry(version: str) -> Registry:
    defs = kv.schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json",
                              version)
    return Resource.from_contents(defs) @ Registry()


@lru_cache(maxsize=256)
def _validator(api_version: str, kind: str, version: str) -> jsonschema.Validator | None:
    try:
        schema = kv.schema_contents(_schema_file(api_version, kind, version), version)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ _registry(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def coverage(obj: dict[str, Any], version: str) -> str:
    """How ``validate`` checks ``obj``: "schema", "calico", "component-config" or "none"."""
    if group(obj) == CALICO_GROUP:
        return "calico"
    if _validator(str(obj.get("apiVersion")), str(obj.get("kind")), schema_version(version)):
        return "schema"
    if obj.get("kind") in COMPONENT_CONFIG.get(str(obj.get("apiVersion")), ()):
        return "component-config"
    return "none"


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(object)"


def validate(obj: dict[str, Any], version: str) -> list[str]:
    """Every problem of ``obj`` for Kubernetes ``version`` (e.g. "1.33.5"); [] if valid."""
    if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
        return ["(object): not a Kubernetes object (apiVersion and kind are required)"]
    if group(obj) == CALICO_GROUP:
        from stacksalt.validate import calico  # written with the Calico formula

        return calico.validate(obj)
    api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
    validator = _validator(api_version, kind, schema_version(version))
    if validator is None:
        if kind in COMPONENT_CONFIG.get(api_version, ()):
            return []
        return [f"(object): no schema for {kind} {api_version} in Kubernetes {version}"]
    # round-trip through JSON: YAML-only values (dates, ...) fail as they would on the API
    try:
        data = json.loads(json.dumps(obj))
    except (TypeError, ValueError) as exc:
        return [f"(object): not JSON-serializable: {exc}"]
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_where(e)}: {_short(e.message)}" for e in errors]
