"""Worker for stacksalt.saltrender: renders `state.show_sls` for many minions in one Salt
process (Salt's start-up and module loading are paid once, not once per node).

stdin: {"config_dir": ..., "jobs": {minion_id: [sls, ...]}, "function": ...,
"kwargs": ...}; stdout: {minion_id: result}, where result is the show_sls data (or, with
"function": "pillar.items", the minion's pillar; the sls list is then empty), or a list of
error strings as Salt returns them.
"""

from __future__ import annotations

import copy
import json
import logging
import sys


def main() -> int:
    import salt.client
    import salt.config

    request = json.load(sys.stdin)
    base = salt.config.minion_config(request["config_dir"] + "/minion")
    logging.getLogger("salt").setLevel(logging.CRITICAL)
    # A fresh Caller (loader, grains, pillar) per minion: Salt's loaders keep the pillar
    # they were built with, so one Caller cannot serve two minions. What is shared is the
    # interpreter and its imports. tests/fast/test_render_worker.py compares the result
    # with one salt-call process per minion.
    function = request.get("function", "state.show_sls")
    results = {}
    for minion_id, sls in request["jobs"].items():
        opts = copy.deepcopy(base)
        opts["id"] = minion_id
        caller = salt.client.Caller(mopts=opts)
        try:
            results[minion_id] = (caller.cmd(function, ",".join(sls)) if sls
                                  else caller.cmd(function, **request.get("kwargs", {})))
        except Exception as exc:  # noqa: BLE001 - reported per minion, never swallowed
            results[minion_id] = [f"{type(exc).__name__}: {exc}"]
    json.dump(results, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
