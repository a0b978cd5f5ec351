"""Per-node summary of a `state.apply` run (salt --out=json --static)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class NodeResult:
    minion_id: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    duration_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    changed_ids: list[str] = field(default_factory=list)


def json_from(output: str) -> dict:
    """The first JSON object in salt's output (warnings may come before or after it)."""
    start = output.find("{")
    if start < 0:
        return {}
    try:
        data, _ = json.JSONDecoder().raw_decode(output[start:])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def parse(output: str | dict, expected: list[str]) -> dict[str, NodeResult]:
    """Results per minion; a minion that did not return counts as one failure."""
    data = output if isinstance(output, dict) else json_from(output)
    results: dict[str, NodeResult] = {}
    for minion in expected:
        res = NodeResult(minion)
        states = data.get(minion)
        if states is None:
            res.failed = 1
            res.failures.append("did not return")
        elif isinstance(states, list | str):
            res.failed = 1
            res.failures.extend([states] if isinstance(states, str) else [str(s) for s in states])
        else:
            for key, st in states.items():
                res.duration_s += float(st.get("duration") or 0) / 1000.0
                state_id = st.get("__id__", key)
                if st.get("result") is False:
                    res.failed += 1
                    res.failures.append(f"{state_id}: {st.get('comment')}")
                elif st.get("changes"):
                    res.changed += 1
                    res.changed_ids.append(state_id)
                else:
                    res.ok += 1
        results[minion] = res
    return results
