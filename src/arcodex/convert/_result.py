"""What a conversion or update did (or, for a dry run, would do)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from arcodex.convert._check import CheckReport
    from arcodex.convert._plan import Plan
    from arcodex.convert._product import Product
    from arcodex.model import Record

__all__ = ["ConvertResult"]


@dataclass
class ConvertResult:
    """What a conversion or update did.

    For a dry run (``dry_run``) nothing was written: ``plan`` is what would be
    written, ``layout`` describes the product it would make.
    """

    action: Literal["convert", "update"]
    product: Product
    plan: Plan
    report: CheckReport | None = None
    record: Record | None = None
    operation_id: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0
    snapshot: str | None = None
    dry_run: bool = False
    #: For a dry run: the product's variables, chunks, shards, codec and size estimate.
    layout: dict[str, Any] = field(default_factory=dict)
    #: ``(step, seconds)`` of each pipeline step that ran, in order.
    steps: list[tuple[str, float]] = field(default_factory=list)
    #: The steps a dry run did not run (they change something).
    skipped: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.dry_run:
            return "dry-run"
        return self.report.status if self.report else "unchecked"

    def to_dict(self) -> dict[str, Any]:
        first, last = self.plan.time_range()
        return {
            "action": self.action,
            "product": self.product.to_dict(),
            "status": self.status,
            "record": self.record.id if self.record else None,
            "operation": self.operation_id,
            "sources": len(self.plan.sources),
            "steps": self.plan.length,
            "first": first,
            "last": last,
            "variables": sorted(self.plan.variables),
            "changes": self.changes,
            "bytes_written": self.bytes_written,
            "seconds": round(self.seconds, 3),
            "timings": {name: round(seconds, 3) for name, seconds in self.steps},
            **({"snapshot": self.snapshot} if self.snapshot else {}),
            **({"check": self.report.to_dict()} if self.report else {}),
            **(
                {
                    "dry_run": True,
                    "files": [
                        {"url": s.url, "first": s.first, "last": s.last, "steps": s.length}
                        for s in self.plan.sources
                    ],
                    "layout": self.layout,
                    "skipped": list(self.skipped),
                    "warnings": list(self.plan.warnings),
                }
                if self.dry_run
                else {}
            ),
        }
