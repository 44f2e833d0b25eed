"""The extractor seam: read what a file says about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Extracted", "Extractor"]


@dataclass
class Extracted:
    """What extraction learned about one file."""

    metadata: dict[str, Any] = field(default_factory=dict)
    media_type: str | None = None
    format: str | None = None
    kind: str | None = None
    extractors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@runtime_checkable
class Extractor(Protocol):
    """Reads metadata from files it recognises."""

    name: str

    def matches(self, path: Path) -> bool:
        """Whether this extractor understands ``path`` (cheap: suffix or magic bytes)."""
        ...

    def extract(self, path: Path, into: Extracted) -> None:
        """Add what it reads to ``into``; raise ValidationError for an unreadable file."""
        ...
