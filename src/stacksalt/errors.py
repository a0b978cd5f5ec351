"""The one error type of stacksalt: every failure a user can act on is a StacksaltError
whose message is one line naming the file and key (or the thing) at fault and what to do
next. `stacksalt` (cli.main) prints it as that one line and exits 1; no traceback."""

from __future__ import annotations


class StacksaltError(RuntimeError):
    """A failure the user can act on; ``str(err)`` is the line printed."""
