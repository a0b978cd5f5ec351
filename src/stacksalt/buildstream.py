"""The one reader of the Docker engine's build stream (the classic builder), for the lab's
images and the deployment's images alike.

The classic builder prints ``Step i/n : INSTRUCTION``, then either `` ---> Using cache`` or
the step's output, then `` ---> <image id>``; an ``aux`` chunk carries the image ID and an
``error`` chunk ends a failed build. :class:`BuildStream` takes the chunks and calls
``on_step`` once per finished step, ``on_progress`` with a short line while one runs.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
STEP_DONE = re.compile(r"^ ---> ([0-9a-f]{12})$")


class BuildStream:
    """Counts the steps (a ``FROM`` is not one) and the cache hits, keeps the last lines
    for an error message, and the image ID."""

    def __init__(self, on_step: Callable[[str, bool, float, bool], None] | None = None,
                 on_progress: Callable[[str], None] | None = None, tail: int = 40) -> None:
        # on_step(step line, cached, seconds, is_from)
        self.on_step = on_step or (lambda *_: None)
        self.on_progress = on_progress or (lambda _: None)
        self.tail: deque[str] = deque(maxlen=tail)
        self.steps = self.cache_hits = 0
        self.image_id = ""
        self._step: str | None = None
        self._cached = False
        self._started = 0.0

    def feed(self, chunk: dict[str, Any]) -> str | None:
        """Take one decoded chunk; returns the build's error text if it is one."""
        if "error" in chunk:
            return str(chunk["error"]).strip()
        if "aux" in chunk and "ID" in chunk["aux"]:
            self.image_id = chunk["aux"]["ID"]
        for line in chunk.get("stream", "").splitlines():
            self.line(line)
        return None

    def line(self, line: str) -> None:
        self.tail.append(line)
        if STEP.match(line):
            self._step, self._cached, self._started = line, False, time.monotonic()
            self.on_progress(line[:100])
        elif line.strip() == "---> Using cache":
            self._cached = True
        elif STEP_DONE.match(line) and self._step:
            took = time.monotonic() - self._started
            is_from = " : FROM " in self._step
            if not is_from:
                self.steps += 1
                self.cache_hits += self._cached
            self.on_step(self._step, self._cached, took, is_from)
            self._step = None
        elif self._step and line.strip():
            self.on_progress(f"{self._step[:50]} | {line.strip()[:70]}")

    @property
    def all_cached(self) -> bool:
        return self.steps == self.cache_hits
