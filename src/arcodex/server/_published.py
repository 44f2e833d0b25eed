"""The one way every router finds a dataset for a request: :func:`visible_dataset`.

A dataset the request's principal may not see is answered exactly as one that
does not exist: same error, same message. Ids are matched exactly (never by
prefix), since an "ambiguous prefix" answer would reveal hidden ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arcodex.errors import NotFoundError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._access import Principal
    from arcodex.model import Record

__all__ = ["visible_dataset"]


def visible_dataset(catalog: Catalog, dataset_id: str, principal: Principal) -> Record:
    """The dataset record ``dataset_id`` if ``principal`` may see it, else NotFoundError."""
    try:
        record = catalog.backend.get(dataset_id)
    except NotFoundError:
        record = None
    if (
        record is None
        or record.kind != "dataset"
        or record.status == "deleted"
        or not principal.can_see(record)
    ):
        raise NotFoundError(
            f"no dataset {dataset_id!r}; GET /datasets lists the datasets you may see"
        )
    return record
