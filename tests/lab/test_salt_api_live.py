"""salt-api on the lab's cfg01, as the pipeline reaches it from the build host: TLS from the
cluster's Kubernetes CA, eauth pam as the CI user, and the model's ACL enforced."""

from __future__ import annotations

import pytest

from stacksalt.deployment import Deployment
from stacksalt.lab import registry_trust
from stacksalt.pipeline.cli import api_settings
from stacksalt.pipeline.saltapi import SaltAPI, SaltAPIError

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def api(lab, lab_secrets):
    dep = Deployment.load(lab.plan.deployment)
    settings = api_settings(dep)
    reg = registry_trust.registry(dep)
    ca = registry_trust.CERTS_DIR / reg.name / "ca.crt"  # the Kubernetes CA, on the host
    password = lab_secrets["salt_api_ci_password"].strip()
    return settings, ca, password


def test_the_ci_user_runs_a_dry_run_over_tls(api, lab):
    settings, ca, password = api
    master = SaltAPI(settings["url"], settings["user"], password, ca)
    out = master.local(["cmp01.lab.local"], "state.apply", kwarg={"test": True})
    states = out["cmp01.lab.local"]
    assert isinstance(states, dict) and states, out
    # a converged lab: nothing would change, nothing fails
    assert all(v["result"] is True for v in states.values()), [
        k for k, v in states.items() if v["result"] is not True]


def test_the_acl_refuses_what_the_pipeline_does_not_need(api):
    settings, ca, password = api
    master = SaltAPI(settings["url"], settings["user"], password, ca)
    with pytest.raises(SaltAPIError, match="may not call"):
        master.local(["cmp01.lab.local"], "cmd.run", arg=["id"])
    with pytest.raises(SaltAPIError, match="may not call"):
        master.local(["cmp01.lab.local"], "state.apply", kwarg={"test": False})


def test_a_wrong_password_and_an_unknown_ca_are_refused(api, tmp_path):
    settings, ca, password = api
    with pytest.raises(SaltAPIError, match="login of 'stacksalt-ci' refused"):
        SaltAPI(settings["url"], settings["user"], password + "x", ca).login()
    with pytest.raises(SaltAPIError, match="TLS verification failed"):
        SaltAPI(settings["url"], settings["user"], password, None).login()


def test_the_pipelines_runner_is_served_and_no_other(api):
    """The master loads stacksalt_ci from the pinned formulas (runner_dirs) and the ACL lets
    the CI user call it; a runner outside the ACL is refused."""
    settings, ca, password = api
    master = SaltAPI(settings["url"], settings["user"], password, ca)
    # the runner answers from the master's config (salt:master:ci); `lab up` pointed the
    # base dir at the mounted checkout, which is no revision the pipeline deployed
    status = master.runner("stacksalt_ci.status")
    assert status["revision"] is None and isinstance(status["history"], list), status
    with pytest.raises(SaltAPIError, match="may not call"):
        master.runner("manage.up")
