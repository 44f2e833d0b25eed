"""The cursor of an ingestion: which periods a repository holds, read from the repository.

Every period is written as one Icechunk commit whose metadata carries
:data:`CURSOR_KEY` (``{"period": ID, "template": ..., "extent": ...}``) and
whose message names the period. The periods a repository holds are those of
the commits in its branch's ancestry: the repository is the truth, so a crash
between a commit and anything written elsewhere loses nothing and repeats
nothing. A sync planner reads the same list (:func:`committed_periods`) and
appends after its last period.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CURSOR_KEY", "commit_message", "commit_metadata", "committed_periods"]

#: The key of a snapshot's metadata that holds the period it committed.
CURSOR_KEY = "arcodex_ingest"


def commit_metadata(period: str, template: str, extent: str, operation: str) -> dict[str, Any]:
    """The metadata of the commit of ``period`` (the cursor's checkpoint)."""
    return {
        CURSOR_KEY: {
            "period": period,
            "template": template,
            "extent": extent,
            "operation": operation,
        }
    }


def commit_message(period: str, template: str, extent: str) -> str:
    return f"arcodex ingest: {template} over {extent}, period {period}"


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
        if isinstance(cursor, dict) and cursor.get("period"):
            found.append(str(cursor["period"]))
    return found
