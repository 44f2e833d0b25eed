"""The message a write commits with (an Icechunk snapshot's), when none is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arcodex.convert._plan import Plan

__all__ = ["commit_message"]


def commit_message(action: str, plan: Plan) -> str:
    first, last = plan.time_range()
    names = [s.url.rsplit("/", 1)[-1] for s in plan.sources]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"arcodex {action}: {len(names)} sources ({shown}), {plan.concat_dim} {first} to {last}"
