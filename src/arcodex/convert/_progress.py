"""The progress callback of a conversion: ``progress(stage, done, total)``."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "say"]

Progress = Callable[[str, int, int], None]


def say(progress: Progress | None, stage: str, done: int, total: int) -> None:
    """Tell ``progress`` (if any) that ``done`` of ``total`` items of ``stage`` are done."""
    if progress is not None:
        progress(stage, done, total)
