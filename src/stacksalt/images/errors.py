"""The one error type of `stacksalt images`: its message names the file and key at fault
and says what to do next."""

from __future__ import annotations

from stacksalt.errors import StacksaltError


class ImagesError(StacksaltError):
    """An image cannot be defined, built or pushed."""
