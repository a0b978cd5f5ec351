"""Kubernetes Secrets are encrypted at rest: every master's apiserver reads an
EncryptionConfiguration whose key comes from the secrets pillar (compare kubespray's
roles/kubernetes/control-plane/templates/secrets_encryption.yaml.j2)."""

from __future__ import annotations

import base64

import pytest
import yaml

from stacksalt import secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect

pytestmark = pytest.mark.fast

STATE = "kubernetes-master-secrets-encryption-config-managed"


@pytest.fixture(scope="module", params=["lab", "production"])
def masters(request):
    secrets.generate(request.param)
    dep = Deployment.load(request.param)
    rendered = collect.rendered(request.param)
    return (dep, secrets.decrypt_all(request.param),
            {n: s for n, s in rendered.items()
             if "kubernetes-master-kube-apiserver-manifest-managed" in s})


def args(state: dict, call: str) -> dict:
    return next(kw for c, kw in collect.state_calls(state) if c == call)


def test_every_apiserver_encrypts_secrets_with_the_pillars_key(masters):
    dep, values, rendered = masters
    assert rendered
    for node, states in rendered.items():
        conf = args(states[STATE], "file.managed")
        assert conf["mode"] == "0600" and conf["show_changes"] is False, node
        doc = yaml.safe_load(conf["contents"])
        assert (doc["apiVersion"], doc["kind"]) == ("apiserver.config.k8s.io/v1",
                                                    "EncryptionConfiguration")
        (res,) = doc["resources"]
        assert res["resources"] == ["secrets"]
        first, last = res["providers"][0], res["providers"][-1]
        assert last == {"identity": {}}, "identity last: reads what was stored before"
        (key,) = first["aescbc"]["keys"]
        model = dep.parameters(node)["kubernetes"]["master"]["encryption"]["keys"][0]
        assert key["secret"] == values[model["key_secret"]].strip()
        assert len(base64.b64decode(key["secret"])) == 32
        pod = args(states["kubernetes-master-kube-apiserver-manifest-managed"],
                   "stacksalt_static_pod.manifest")["dataset"]
        command = pod["spec"]["containers"][0]["command"]
        assert f"--encryption-provider-config={conf['name']}" in command
        mounts = [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]
        assert any(conf["name"].startswith(p.rstrip("/") + "/") for p in mounts), mounts
        requires = args(states["kubernetes-master-kube-apiserver-manifest-managed"],
                        "stacksalt_static_pod.manifest")["require"]
        assert {"file": STATE} in requires


def test_the_key_reaches_only_the_masters(masters):
    dep, values, rendered = masters
    for node in dep.node_names:
        if node not in rendered:
            refs = str(dep.parameters(node).get("kubernetes", {}))
            assert "encryption_key" not in refs, node
