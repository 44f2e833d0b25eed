"""A catalog's health: what doctor finds and fixes, and recovering from a crash."""

from __future__ import annotations

from arcodex.catalog._doctor import DoctorReport, Recovery, diagnose, doctor_fix
from arcodex.catalog._doctor import recover as recover_operations
from arcodex.catalog._writing import CatalogWriter

__all__ = ["Health"]


class Health(CatalogWriter):
    """The doctor and recovery part of a catalog (the work is in :mod:`._doctor`)."""

    def doctor(
        self, *, verify_hashes: bool = False, fix: bool = False, dry_run: bool = False
    ) -> DoctorReport:
        """Interrupted operations, orphans, missing or changed artifacts. With ``fix``,
        remove the orphans a journal or a provenance marker proves arcodex wrote
        (``dry_run``: only say which)."""
        if fix:
            return doctor_fix(self, verify_hashes=verify_hashes, dry_run=dry_run)
        return diagnose(self, verify_hashes=verify_hashes)

    def recover(self, *, dry_run: bool = False) -> list[Recovery]:
        """Roll interrupted operations forward (data complete) or back; ``dry_run`` only says."""
        return recover_operations(self, dry_run=dry_run)
