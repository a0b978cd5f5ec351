"""`stacksalt lab down` removes what the lab created and nothing else (runs last)."""

from __future__ import annotations

import pytest

from stacksalt.lab import images
from stacksalt.lab import lab as lab_mod

pytestmark = pytest.mark.lab


def test_down_removes_only_the_lab(lab):
    client = lab.client
    bystander_net = client.networks.create("stacksalt-test-bystander", driver="bridge")
    bystander = client.containers.create(images.BASE_IMAGE, ["sleep", "60"],
                                         name="stacksalt-test-bystander")
    try:
        assert lab_mod.down("lab") == 0
        left = client.containers.list(all=True, filters={"label": "io.stacksalt.deployment=lab"})
        assert left == []
        assert client.networks.list(names=[lab.plan.network_name]) == []
        # what the lab did not create is still there, and so are the cached images
        client.containers.get("stacksalt-test-bystander")
        client.networks.get(bystander_net.id)
        assert images.image_exists(client, images.SALT_IMAGE)
        assert images.image_exists(client, images.BASE_IMAGE)
    finally:
        bystander.remove(force=True)
        bystander_net.remove()
