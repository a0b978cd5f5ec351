"""What an upgrade Job's log may say at ERROR level and still count as clean.

nova's populate_instance_compute_id online migration (nova/objects/instance.py) logs ERROR
"Unable to migrate instance because host None with node None not found" for every
instance that never had a host, skips it and exits 0. Two such rows exist in the lab: a
server the scheduler could not place (the no-placement control leaves one in cell0), and
the deleted marker instance 00000000-0000-0000-0000-000000000000 that nova's own
fill_virtual_interface_list migration creates (nova/objects/virtual_interface.py,
FAKE_UUID). Any other ERROR line is a failure.
"""

from __future__ import annotations

import re

NEVER_SCHEDULED = re.compile(r"ERROR nova\.objects\.instance .*Unable to migrate instance "
                             r"because host None with node None not found")


def unexpected_errors(out: str) -> list[str]:
    """The lines of a Job's output that say ERROR, less nova's never-scheduled notice."""
    return [line for line in out.splitlines()
            if "ERROR" in line and not NEVER_SCHEDULED.search(line)]
