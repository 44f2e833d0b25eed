"""Publishing datasets: publish, unpublish and set_visibility of a record's access block.

Each writes the access block documented in :mod:`arcodex.catalog._access` through
:meth:`~arcodex.catalog._changing.Changing.update`, so the change is one operation
like any other: versioned, journaled, with its event and hooks, attributed to ``user``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from arcodex.catalog._access import ACCESS_KEY, check_visibility, record_access
from arcodex.catalog._changing import Changing
from arcodex.catalog._events import current_user
from arcodex.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from arcodex.model import Record

__all__ = ["Publishing", "publishable", "served_snapshot"]

#: Check results that allow publishing (a warning is still a passed check).
PASSED = ("pass", "warn")


def _dataset(record: Record) -> Record:
    if record.kind != "dataset":
        raise ValidationError(
            f"record {record.id} is a {record.kind}, not a dataset; only datasets "
            "(catalogued files, external datasets, products of `arcodex convert`) can be published"
        )
    return record


def publishable(record: Record, tag: str | None = None) -> Record:
    """``record`` if :meth:`Publishing.publish` would take it (with ``tag``), else its refusal."""
    served_snapshot(_dataset(record), tag)
    return record


def served_snapshot(record: Record, tag: str | None = None) -> tuple[str | None, str | None]:
    """(snapshot, tag) a publication of ``record`` serves, or a refusal.

    A converted dataset's product must have passed its check (``convert.check``);
    for Icechunk the snapshot is the one that check was of (the newest written), or
    the tag's. A catalogued dataset without a product (source files, an external
    dataset) is published as it is: there is no product to be unfaithful to it.
    """
    conv = record.metadata.get("convert")
    conv = conv if isinstance(conv, Mapping) else {}
    if not conv:
        if tag is not None:
            raise ValidationError(
                f"dataset {record.id} has no Icechunk product; --tag is for Icechunk products"
            )
        return None, None
    status = conv.get("check")
    if status not in PASSED:
        said = f"its check is {status!r}" if status else "it has no checked product"
        raise ConflictError(
            f"dataset {record.id} cannot be published: {said}; "
            f"run `arcodex check {record.id}` (and fix or re-convert it) first"
        )
    product = conv.get("product")
    fmt = str(product.get("format", "")) if isinstance(product, Mapping) else ""
    if "icechunk" not in fmt:
        if tag is not None:
            raise ValidationError(
                f"dataset {record.id} is {fmt or 'not versioned'}; --tag is for Icechunk products"
            )
        return None, None
    if tag is None:
        snapshot = conv.get("snapshot")
        return (str(snapshot) if snapshot else None), None
    tags = {str(t.get("tag")): t for t in conv.get("tags") or () if isinstance(t, Mapping)}
    if tag not in tags:
        known = ", ".join(sorted(tags)) or "none"
        raise NotFoundError(f"dataset {record.id} has no tag {tag!r} (its tags: {known})")
    return str(tags[tag].get("snapshot")), tag


class Publishing(Changing):
    """The part of a catalog that publishes datasets (changes through :meth:`update`)."""

    def publish(
        self,
        id_or_prefix: str,
        *,
        tag: str | None = None,
        visibility: str | None = None,
        user: str | None = None,
    ) -> Record:
        """Publish a dataset: anonymous readers (or its project's) may see it from now on.

        Args:
            id_or_prefix: The dataset's record id (or a unique prefix).
            tag: For an Icechunk product, serve this tag's snapshot instead of the newest.
            visibility: ``public``, ``private`` or ``project:NAME``; default the
                record's own (``public`` if it has none).
            user: Who publishes (default: the current user).

        Raises:
            ValidationError: Not a dataset, or a bad visibility.
            ConflictError: Its product's check failed, or it has none.
        """
        user = user or current_user()
        record = _dataset(self.get(id_or_prefix))
        access = record_access(record)
        chosen = check_visibility(visibility or str(access.get("visibility") or "public"))
        snapshot, served_tag = served_snapshot(record, tag)
        from arcodex.model import utcnow

        block: dict[str, Any] = {
            "visibility": chosen,
            "published": True,
            "published_at": utcnow().isoformat().replace("+00:00", "Z"),
            "published_by": user,
        }
        if snapshot:
            block["snapshot"] = snapshot
        if served_tag:
            block["tag"] = served_tag
        return self.update(record.id, set={ACCESS_KEY: block}, user=user)

    def unpublish(self, id_or_prefix: str, *, user: str | None = None) -> Record:
        """Withdraw a dataset: only writers and admins see it again (its visibility is kept)."""
        user = user or current_user()
        record = _dataset(self.get(id_or_prefix))
        access = record_access(record)
        if access.get("published") is not True:
            raise ConflictError(f"dataset {record.id} is not published; nothing to withdraw")
        block = {
            "visibility": check_visibility(str(access.get("visibility") or "public")),
            "published": False,
        }
        return self.update(record.id, set={ACCESS_KEY: block}, user=user)

    def set_visibility(
        self, id_or_prefix: str, visibility: str, *, user: str | None = None
    ) -> Record:
        """Set who may see a dataset once published: ``public``, ``private`` or ``project:NAME``."""
        user = user or current_user()
        chosen = check_visibility(visibility)
        record = _dataset(self.get(id_or_prefix))
        if record_access(record).get("visibility") == chosen:
            raise ConflictError(f"dataset {record.id} is already {chosen}")
        return self.update(record.id, set={f"{ACCESS_KEY}.visibility": chosen}, user=user)
