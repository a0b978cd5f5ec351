"""The formulas' pillar schemas: every enabled role of every node, checked against its schema.

Each formula keeps one JSON schema per role in ``formulas/<formula>/schema.yaml``::

    $defs: {port: {...}, ...}      # shared by the formula's roles
    roles:
      server: {type: object, additionalProperties: false, properties: {...}}

For every node, every top-level parameter named after a formula with a schema file is
checked: it must be a mapping of roles (``parameters:memcached: 7`` is refused), each role
must be one the formula has, and each role whose ``enabled`` is set (a role whose schema
has no ``enabled`` key, like ``docker:build``, whenever it is present) is validated with
jsonschema. A disabled role is not read by the formula and is not checked. The schemas
are read from the ``formulas/`` directory beside the inventory's ``classes/`` or beside the
inventory (the checkout: ``reclass/`` next to ``formulas/``); an inventory with neither (a
corpus case) has no schemas to check against.

Errors (kind ``schema``) are one line each, naming the file and key the operator edits: a
value that comes in through a reference (``replicas: ${_param:keystone_replicas}``) is
blamed on the class that sets the parameter; an unknown key on the file that sets it; a
missing key on the file that sets its parent. Formats: ``ip-address`` (an IPv4 or IPv6
address), ``ip-network`` (a CIDR, host bits zero) and ``regex`` (a Python regular
expression, as Salt's ACL matching compiles it).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from stacksalt.model.checks.network import blame, source_key
from stacksalt.model.checks.openstack import project_dir
from stacksalt.model.errors import ModelError
from stacksalt.model.render import RenderedDeployment, RenderedNode
from stacksalt.model.semantic import semantic_check

KIND = "schema"
SCHEMA_FILE = "schema.yaml"
MAX_VALUE = 40  # characters of a value shown in a message

FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("ip-address", raises=ValueError)
def _is_address(value: object) -> bool:
    return not isinstance(value, str) or bool(ipaddress.ip_address(value))


@FORMATS.checks("ip-network", raises=ValueError)
def _is_network(value: object) -> bool:
    if isinstance(value, str) and "/" not in value:
        raise ValueError("no prefix length")
    return not isinstance(value, str) or bool(ipaddress.ip_network(value, strict=True))


@FORMATS.checks("regex", raises=re.error)
def _is_regex(value: object) -> bool:
    return not isinstance(value, str) or bool(re.compile(value))


class SchemaFileError(ValueError):
    """A formula's schema file is unreadable or not a valid JSON schema (one line)."""


@functools.lru_cache(maxsize=8)
def load_schemas(formulas: Path) -> dict[str, dict[str, jsonschema.protocols.Validator]]:
    """{formula: {role: validator}} from every ``formulas/<formula>/schema.yaml``."""
    result: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(formulas).glob(f"*/{SCHEMA_FILE}")):
        where = f"{path.parent.name}/{SCHEMA_FILE}"
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SchemaFileError(
                f"formulas/{where}: invalid YAML: {exc}".replace("\n", " ")) from None
        roles = doc.get("roles") if isinstance(doc, dict) else None
        if not isinstance(roles, dict):
            raise SchemaFileError(f"formulas/{where}: roles: must be a mapping of role schemas")
        validators = {}
        for role, schema in roles.items():
            full = {"$defs": doc.get("$defs", {}), **schema}
            try:
                jsonschema.Draft202012Validator.check_schema(full)
            except jsonschema.SchemaError as exc:
                at = ":".join(map(str, exc.absolute_path))
                raise SchemaFileError(
                    f"formulas/{where}: roles:{role}:{at}: {exc.message}") from None
            validators[str(role)] = jsonschema.Draft202012Validator(
                full, format_checker=FORMATS)
        result[path.parent.name] = validators
    return result


def short(value: Any) -> str:
    """``value`` for a one-line message: its repr, cut to MAX_VALUE characters."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _expected(schema: dict[str, Any]) -> str:
    """What a schema asks for, in words (for a type or format error)."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1].replace("_", " ")
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "object":
        return "a mapping"
    if kind == "array":
        return "a list"
    return str(kind or "something else")


def _messages(error: jsonschema.ValidationError) -> Iterator[tuple[list[str], str, bool]]:
    """(key path below the role, message) for one jsonschema error; several for a set of
    unknown keys (one per key, each blamed on the file that sets it)."""
    path = [str(p) for p in error.absolute_path]
    validator, value = error.validator, error.instance
    if "propertyNames" in error.schema_path:  # a key of a map of names (value: the key)
        if validator == "pattern":
            rule = f"does not match {error.validator_value}"
        elif validator == "not":
            rule = "is not allowed here"
        elif validator == "format":
            rule = f"is not a {str(error.validator_value).replace('-', ' ')}"
        else:
            rule = "is not a string"
        yield [*path, str(value)], f"name {short(value)} {rule}", False
    elif validator == "additionalProperties" and isinstance(value, dict):
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        for key in value:
            if key in known or any(re.search(p, str(key)) for p in patterns):
                continue
            names = ", ".join(known) or "none"
            if len(names) > 120:
                names = names[:117] + "..."
            yield [*path, str(key)], f"unknown key (the formula reads: {names})", False
    elif validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        yield [*path, missing], "is required and not set", False
    elif validator == "format":
        what = str(error.validator_value).replace("-", " ")
        yield path, f"{short(value)} is not {'an' if what[0] in 'aeiou' else 'a'} {what}", True
    elif validator == "type":
        what = _expected(error.schema)
        if not what.startswith(("a ", "an ")):
            what = f"{'an' if what[0] in 'aeiou' else 'a'} {what}"
        yield path, f"{short(value)} is not {what}", True
    elif validator in ("anyOf", "oneOf"):
        # the branches the value has the type of, and what is wrong inside them
        inner = [e for e in error.context or []
                 if not (e.validator == "type" and list(e.absolute_path) == list(
                     error.absolute_path))]
        if inner:
            for sub in inner:
                yield from _messages(sub)
        else:
            kinds = " or ".join(_expected(s) for s in error.validator_value)
            yield path, f"{short(value)} is not {kinds}", True
    elif validator in ("minimum", "maximum"):
        low, high = error.schema.get("minimum", "-"), error.schema.get("maximum", "")
        yield path, f"{short(value)} is out of range ({low}..{high})", True
    elif validator == "pattern":
        yield path, f"{short(value)} does not match {error.validator_value}", True
    elif validator == "minItems":
        yield path, "is empty", True
    elif validator == "enum":
        yield path, f"{short(value)} is not {_expected(error.schema)}", True
    else:
        yield path, f"{short(value)}: {error.message}"[:200].replace("\n", " "), True


def role_errors(validator: Any, value: Any) -> Iterator[tuple[list[str], str, bool]]:
    """(key path below the role, message, whether the value is to blame) for everything
    wrong with one role's pillar. A wrong value is blamed where it is written (following
    references); an unknown or missing key on the file that sets the key or its parent."""
    seen = set()
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        for path, message, follow in _messages(error):
            if (tuple(path), message) not in seen:
                seen.add((tuple(path), message))
                yield path, message, follow


def node_errors(
    deployment: RenderedDeployment, node: RenderedNode, schemas: dict[str, dict[str, Any]]
) -> Iterator[ModelError]:
    params = node.parameters
    for formula in sorted(schemas):
        if formula not in params:
            continue
        roles, value = schemas[formula], params[formula]
        if not isinstance(value, dict):
            yield blame(deployment, node, formula, KIND,
                        f"{short(value)} is not a mapping of roles ({', '.join(roles)})")
            continue
        for role in sorted(value, key=str):
            spec = value[role]
            validator = roles.get(str(role))
            if validator is None:
                yield deployment.error(
                    node, f"{formula}:{role}", KIND,
                    f"unknown role (the {formula} formula has: {', '.join(roles) or 'none'})")
                continue
            switch = "enabled" in validator.schema.get("properties", {})
            if isinstance(spec, dict) and switch and spec.get("enabled", False) is False:
                continue  # disabled: the formula reads nothing of it
            for path, message, follow in role_errors(validator, spec):
                key = ":".join([formula, str(role), *path])
                if follow:  # the value: where it is written, through references
                    yield blame(deployment, node, key, KIND, message)
                else:  # a key: in the mapping it is (or is not) written in
                    parent = source_key(deployment, node, ":".join([formula, str(role),
                                                                    *path[:-1]]))
                    yield deployment.error(node, f"{parent}:{path[-1]}" if path else parent,
                                           KIND, message)


@semantic_check
def pillar_matches_schema(deployment: RenderedDeployment) -> Iterator[ModelError]:
    formulas = project_dir(deployment, "formulas")
    if formulas is None:
        return  # an inventory without formulas beside it (a corpus case): nothing to check
    schemas = load_schemas(formulas.resolve())
    for name in sorted(deployment.nodes):
        yield from node_errors(deployment, deployment.nodes[name], schemas)
