"""The cursor of an ingestion: which periods a repository holds, read from the repository.

Every period is written in one Icechunk commit whose metadata carries
:data:`CURSOR_KEY` (``{"period": ID, "template": ..., "extent": ...}``) and
whose message names the period; a backfill commits a batch of consecutive
periods at once (one time chunk's worth), its cursor listing every one of them
(``"periods": [ID, ...]``, ``"period"`` the last). The periods a repository holds are those of
the commits in its branch's ancestry: the repository is the truth, so a crash
between a commit and anything written elsewhere loses nothing and repeats
nothing. A sync planner reads the same list (:func:`committed_periods`) and
appends after its last period.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["CURSOR_KEY", "commit_message", "commit_metadata", "committed_periods"]

#: The key of a snapshot's metadata that holds the period it committed.
CURSOR_KEY = "arcodex_ingest"


def commit_metadata(
    period: str | Sequence[str], template: str, extent: str, operation: str
) -> dict[str, Any]:
    """The metadata of the commit of ``period`` (or of a batch of periods, in order):
    the cursor's checkpoint."""
    periods = [period] if isinstance(period, str) else list(period)
    cursor: dict[str, Any] = {
        "period": periods[-1],
        "template": template,
        "extent": extent,
        "operation": operation,
    }
    if len(periods) > 1:
        cursor["periods"] = periods
    return {CURSOR_KEY: cursor}


def commit_message(period: str | Sequence[str], template: str, extent: str) -> str:
    periods = [period] if isinstance(period, str) else list(period)
    if len(periods) == 1:
        return f"arcodex ingest: {template} over {extent}, period {periods[0]}"
    return (
        f"arcodex ingest: {template} over {extent}, {len(periods)} periods "
        f"{periods[0]} to {periods[-1]}"
    )


def committed_periods(repo: Any, branch: str = "main") -> list[str]:
    """The period ids committed on ``branch`` of ``repo``, oldest commit first.

    A branch that does not exist yet holds none.
    """
    import icechunk

    found: list[str] = []
    try:
        ancestry = list(repo.ancestry(branch=branch))
    except icechunk.IcechunkError:
        return []
    for snapshot in reversed(ancestry):
        cursor = (snapshot.metadata or {}).get(CURSOR_KEY)
        if not isinstance(cursor, dict):
            continue
        if isinstance(cursor.get("periods"), list):
            found.extend(str(p) for p in cursor["periods"])
        elif cursor.get("period"):
            found.append(str(cursor["period"]))
    return found
