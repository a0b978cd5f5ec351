"""The apiserver's audit Policy as the stacksalt_objects module builds it from
kubernetes:master:audit: the checks a model's rules must pass (one error naming the key),
and the production model's flags. The rendered states (files, flags, mounts):
tests/fast/test_kubernetes_render.py::test_apiserver_audit_log."""

from __future__ import annotations

import copy

import pytest
import yaml

from stacksalt import paths, saltmodules

pytestmark = pytest.mark.fast

B = saltmodules.load("_modules/stacksalt_objects.py")
AUDIT = yaml.safe_load((paths.formulas_dir() / "kubernetes" / "defaults.yaml").read_text())[
    "master"]["audit"]
SECRETS = {"group": "", "resources": ["secrets"]}


def audit(**change) -> dict:
    return dict(copy.deepcopy(AUDIT), **change)


def test_the_default_policy_logs_no_body_of_what_holds_credentials():
    settings = B.audit_settings(audit())
    policy = settings["policy"]
    assert policy["rules"] == AUDIT["rules"]
    for group, resource in B.AUDIT_SENSITIVE:
        # every rule a request on it can reach, up to the first that stops them all
        reached = []
        for rule in policy["rules"]:
            match = B.audit_rule_match(rule, group, resource)
            if match:
                reached.append(rule["level"])
            if match == "all":
                break
        assert reached == ["Metadata"], (resource, reached)
    assert settings["flags"]["audit-log-maxbackup"] == "10"


@pytest.mark.parametrize("rules, message", [
    # a catch-all at Request before the Metadata rule: Secrets' bodies in the log
    ([{"level": "Request"}, {"level": "Metadata", "resources": [SECRETS]}],
     "kubernetes:master:audit:rules:0: level Request would log the bodies of secrets"),
    # a rule for the group's every resource
    ([{"level": "RequestResponse", "verbs": ["create"], "resources": [{"group": ""}]}],
     "kubernetes:master:audit:rules:0: level RequestResponse would log the bodies of secrets"),
    # a rule narrowed to some users does not shadow the later catch-all
    ([{"level": "Metadata", "users": ["alice"], "resources": [SECRETS]}, {"level": "Request"}],
     "kubernetes:master:audit:rules:1: level Request would log the bodies of secrets"),
    # the TokenRequest subresource (a token in the response)
    ([{"level": "Metadata", "resources": [SECRETS, {"group": "", "resources": ["configmaps"]},
                                          {"group": "authentication.k8s.io"}]},
      {"level": "Request", "resources": [{"group": "", "resources": ["serviceaccounts/*"]}]}],
     "rules:1: level Request would log the bodies of serviceaccounts/token"),
    ([{"level": "Everything"}], "kubernetes:master:audit:rules:0:level is 'Everything'"),
    (["Metadata"], "kubernetes:master:audit:rules:0 is str, expected a mapping"),
    ([], "kubernetes:master:audit:rules must be a non-empty list"),
])
def test_a_bad_rule_is_one_error_naming_the_key(rules, message):
    with pytest.raises(B.ObjectError) as err:
        B.audit_settings(audit(rules=rules))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("key, value, message", [
    ("max_age", "30d", "kubernetes:master:audit:max_age is '30d', expected a whole number"),
    ("max_size", -1, "kubernetes:master:audit:max_size is -1"),
    ("log_dir", "var/log", "kubernetes:master:audit:log_dir is 'var/log', expected an absolute"),
])
def test_bad_rotation_or_paths_are_one_error_naming_the_key(key, value, message):
    with pytest.raises(B.ObjectError, match="^" + message):
        B.audit_settings(audit(**{key: value}))


def test_nothing_logged_is_allowed_and_audit_can_be_switched_off():
    quiet = [{"level": "None", "resources": [SECRETS]}, {"level": "Metadata"}]
    assert B.audit_settings(audit(rules=quiet))["policy"]["rules"] == quiet
    assert B.audit_settings(audit(enabled=False)) == {"enabled": False}


def test_the_model_sets_the_rotation(lab_deployment):
    dep = lab_deployment
    master = next(n for n in dep.node_names
                  if dep.parameters(n).get("kubernetes", {}).get("master", {}).get("enabled"))
    a = dep.parameters(master)["kubernetes"]["master"]["audit"]
    p = dep.parameters(master)["_param"]
    assert (a["enabled"], a["max_age"], a["max_backup"], a["max_size"]) == (
        p["kubernetes_audit_enabled"], p["kubernetes_audit_log_max_age"],
        p["kubernetes_audit_log_max_backup"], p["kubernetes_audit_log_max_size"])
