from __future__ import annotations

import pytest

from stacksalt import paths, secrets
from stacksalt.deployment import Deployment


def deployments() -> list[str]:
    return paths.examples()


@pytest.fixture(scope="module", params=deployments())
def deployment(request) -> str:
    """Each deployment in turn, with throwaway secrets (git-ignored) made for rendering."""
    secrets.generate(request.param)
    return request.param


@pytest.fixture(scope="session")
def lab_secrets() -> dict[str, str]:
    """The lab's throwaway key and secrets (made if missing), decrypted."""
    secrets.generate("lab")
    return secrets.decrypt_all("lab")


@pytest.fixture(scope="session")
def lab_deployment() -> Deployment:
    return Deployment.load("lab")
