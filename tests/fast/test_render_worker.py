"""The batch renderer (many minions in one Salt process) gives exactly what a separate
salt-call per minion gives: nothing of one minion's render reaches the next."""

from __future__ import annotations

import json

import pytest

from stacksalt import saltrender
from stacksalt.deployment import Deployment

pytestmark = pytest.mark.fast


def test_batch_render_equals_one_process_per_minion(lab_secrets):
    dep = Deployment.load("lab")
    # cfg01 first: the salt master, the CA and its pillar must not leak into the others
    order = ["cfg01.lab.local", "cmp02.lab.local", "mst01.lab.local", "ctl03.lab.local"]
    jobs = {n: dep.rendered[n]["applications"] for n in order}
    batch = saltrender.show_sls_many("lab", jobs, workers=1)
    for node in order:
        alone = saltrender.salt_call(node, "lab", "state.show_sls", ",".join(jobs[node]))
        assert json.dumps(batch[node], sort_keys=True, default=str) == json.dumps(
            alone, sort_keys=True, default=str), node
