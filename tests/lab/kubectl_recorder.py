#!/usr/bin/python3
"""A recording stand-in for kubectl (tests only: no API server can run on these machines).

Installed where the apply state looks for kubectl. Every invocation appends one JSON line
{argv, start, end, rc} to <dir>/calls.jsonl and answers as <dir>/answers.json says, where
<dir> is $KUBECTL_RECORDER_DIR or /var/lib/kubectl-recorder:

    {"rules": [{"match": ["rollout", "status", "deployment/glance"],  # all in argv
                "rc": 1, "out": "error: ...", "sleep": 30,
                "echo_file": true}]}                                   # print the -f file

The first rule whose `match` tokens all appear in argv decides; without one the call
succeeds with what kubectl prints on success, except a wait for a Job's Failed
condition, which blocks as kubectl does for a Job that does not fail (the apply kills it
once the Job completed). A file given with -f must be readable (as
kubectl would need it), else exit 1.
"""

import json
import os
import sys
import time

DIR = os.environ.get("KUBECTL_RECORDER_DIR", "/var/lib/kubectl-recorder")


def main() -> int:
    argv = sys.argv[1:]
    start = time.time()
    try:
        with open(os.path.join(DIR, "answers.json"), encoding="utf-8") as fh:
            rules = json.load(fh).get("rules", [])
    except FileNotFoundError:
        rules = []
    rule = next((r for r in rules if all(t in argv for t in r.get("match", []))), {})
    path = argv[argv.index("-f") + 1] if "-f" in argv else None
    rc, out = rule.get("rc", 0), rule.get("out")
    if path and not os.access(path, os.R_OK):
        rc, out = 1, f"error: the path \"{path}\" cannot be read"
    if out is None:
        if "apply" in argv:
            out = f"{os.path.basename(path or '?')} serverside-applied"
        elif "rollout" in argv:
            out = f"{argv[argv.index('status') + 1]} successfully rolled out"
        elif "wait" in argv:
            out = f"{[a for a in argv if a.startswith('job/')][0]} condition met"
        else:
            out = ""
    if rule.get("echo_file") and path:
        with open(path, encoding="utf-8") as fh:
            out = f"{out}\n{fh.read()}"
    record = {"argv": argv, "start": start, "pid": os.getpid()}
    with open(os.path.join(DIR, "calls.jsonl"), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    sleep = rule.get("sleep")
    if not rule and "--for=condition=failed" in argv:
        sleep = 3600
    if sleep:
        time.sleep(float(sleep))
    if out:
        print(out, file=sys.stderr if rc else sys.stdout)
    return rc


if __name__ == "__main__":
    sys.exit(main())
