"""`stacksalt ci run`'s entry point: where it finds salt-api when the pushed model does not
render (a broken push must still be reported on the master)."""

from __future__ import annotations

import pytest

from stacksalt import paths
from stacksalt.pipeline import cli, run
from tests.trees import copy_deployment

pytestmark = pytest.mark.fast


@pytest.fixture
def broken(tmp_path):
    root = copy_deployment("lab", tmp_path / "repo")
    config = root / "reclass" / "classes" / "cluster" / "lab" / "openstack" / "init.yml"
    config.write_text(config.read_text().replace("parameters:", "classes:\n  - system.nothing."
                                                 "here\nparameters:", 1))
    paths.activate(root)
    yield root
    paths.activate(None)


def test_salt_api_comes_from_the_model_when_it_renders():
    paths.activate(paths.example("lab"))
    try:
        assert cli._settings("lab", None, None) == {"url": "https://172.30.70.10:8000",
                                                    "user": "stacksalt-ci"}
        assert cli._settings("lab", "https://x:1", None)["url"] == "https://x:1"
    finally:
        paths.activate(None)


def test_a_model_that_does_not_render_needs_salt_api_named(broken):
    with pytest.raises(run.PipelineError) as err:
        cli._settings("lab", None, None)
    message = str(err.value)
    assert "\n" not in message and "system.nothing.here" in message, message
    assert "--master-url and --api-user" in message
    # named: the run goes on to its model check, which fails and is reported
    assert cli._settings("lab", "https://m:8000", "ci") == {"url": "https://m:8000",
                                                           "user": "ci"}


def test_the_docker_engines_errors_are_one_line_and_bugs_are_not_hidden():
    import docker.errors
    import requests

    from stacksalt import cli as main_cli

    line = main_cli.external_error(docker.errors.APIError("409 Conflict\nname in use"))
    assert line and "\n" not in line and "name in use" in line and "lab status" in line
    assert "did not answer" in main_cli.external_error(requests.ConnectionError("refused"))
    # a bug is not dressed up as a user error: the traceback stays
    assert main_cli.external_error(KeyError("x")) is None
