"""The one way every router finds a dataset for a request: :func:`visible_dataset`.

A dataset the request's principal may not see is answered exactly as one that
does not exist: same error, same message. Ids are matched exactly (never by
prefix), since an "ambiguous prefix" answer would reveal hidden ids. A virtual
product's sources are read with the storage profile that holds them
(:func:`sources_profile`): the record names no profile, and readers bring none.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from arcodex.errors import ArcodexError, NotFoundError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._access import Principal
    from arcodex.model import Record

__all__ = ["UnreadableDataset", "open_served", "sources_profile", "visible_dataset"]


class UnreadableDataset(ArcodexError):
    """A visible dataset whose data cannot be read now (HTTP 503: the server's problem)."""


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


def sources_profile(catalog: Catalog, record: Record) -> str | None:
    """The storage profile whose bucket holds the sources of ``record``'s virtual product
    (its chunks are read from them), or None (no profile does, or the product is not virtual).

    As a product's ``--dest`` is matched to a profile by its bucket: a conversion's
    ``--source-profile`` is not stored with its record, only the options without secrets.
    """
    from arcodex.storage._access import match_profile

    containers = (record.metadata.get("convert") or {}).get("containers") or []
    for container in containers:
        name = match_profile(str(container), catalog.config.profiles)
        if name is not None:
            return name
    return None


def open_served(stack: ExitStack, catalog: Catalog, record: Record) -> Any:
    """The dataset ``record`` as the service serves it, lazily (closed with ``stack``): a
    converted product (an Icechunk one at its published snapshot), or the catalogued file.

    Any failure to read it is :class:`UnreadableDataset`, whose message names neither
    paths nor storage (the log has the cause): the asker cannot fix it, the catalog can.
    """
    import logging

    from arcodex.catalog._access import record_access

    try:
        if "convert" in record.metadata:
            from arcodex.convert._locate import locate_product

            profile = sources_profile(catalog, record)
            _, prod, _ = locate_product(
                stack, record.id, catalog, profile, None, None, None, "main"
            )
            access = record_access(record)
            snapshot = access.get("snapshot") if access.get("published") else None
            ds = prod.open(chunks={}, snapshot=str(snapshot) if snapshot else None)
        else:
            from arcodex.stores._catalog import CatalogStore

            store = CatalogStore(root=str(catalog.root))
            store._catalog = catalog  # the open catalog, not a second one
            ds = store._open_record(record, {}, None)
    except Exception as exc:
        logging.getLogger("arcodex.server").warning(
            "dataset %s cannot be read: %s", record.id, exc, exc_info=True
        )
        raise UnreadableDataset(
            f"dataset {record.id} cannot be read now; the catalog's maintainers can run "
            f"`arcodex check {record.id}` or `arcodex doctor`"
        ) from None
    stack.callback(ds.close)
    return ds
