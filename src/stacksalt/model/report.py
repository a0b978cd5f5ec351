"""How a model check's result is shown: one line per error, then a summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from stacksalt.model.errors import ModelError

if TYPE_CHECKING:
    from stacksalt.model.check import CheckResult

MAX_NODES_SHOWN = 5


def display_path(inventory: Path, rel: str | None) -> str:
    """A file as the user should see it: relative to the working directory if possible."""
    if rel is None:
        return "(inventory)"
    path = Path(rel) if os.path.isabs(rel) else Path(inventory) / rel
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def nodes_text(nodes: list[str]) -> str:
    if not nodes:
        return ""
    shown = ", ".join(nodes[:MAX_NODES_SHOWN])
    more = len(nodes) - MAX_NODES_SHOWN
    return f"(nodes: {shown}{f', +{more} more' if more > 0 else ''})"


def format_error(error: ModelError, inventory: Path) -> Text:
    """``file[:line]: key: message (nodes: ...) [kind]`` as rich Text (str() for plain)."""
    text = Text()
    where = display_path(inventory, error.file)
    if error.line:
        where += f":{error.line}"
    text.append(where, style="bold")
    text.append(": ")
    if error.key:
        text.append(error.key, style="cyan")
        text.append(": ")
    text.append(error.message, style="red")
    if error.nodes:
        text.append(" " + nodes_text(error.nodes), style="dim")
    text.append(f" [{error.kind}]", style="dim")
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def print_result(result: CheckResult, console: Console | None = None) -> None:
    """Every error, one per line, then the count; or a one-line OK summary."""
    console = console or Console(highlight=False, soft_wrap=True)
    scope = f"deployment {result.deployment!r}" if result.deployment else "all deployments"
    timing = f"{result.seconds:.1f} s"
    for error in result.errors:
        console.print(format_error(error, result.inventory))
    if result.errors:
        files = {e.file for e in result.errors}
        summary = (
            f"{_plural(len(result.errors), 'error')} in {_plural(len(files), 'file')}; "
            f"{result.rendered} of {_plural(result.nodes, 'node')} of {scope} rendered cleanly"
        )
        if result.degraded:
            summary += (
                f"; {_plural(len(result.degraded), 'node')} rendered without the broken "
                "parts of their files (errors on them may follow from those)"
            )
        console.print(Text(f"FAILED: {summary} ({timing})", style="bold red"))
    else:
        console.print(
            Text(
                f"OK: {_plural(result.nodes, 'node')} of {scope} rendered, "
                f"{_plural(result.classes, 'class file')} checked, no errors ({timing})",
                style="bold green",
            )
        )
