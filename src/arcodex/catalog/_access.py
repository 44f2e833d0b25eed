"""Who may see what: principals, roles, visibility and publication of records.

A record's access is kept in its metadata under :data:`ACCESS_KEY`, so both
backends query it like any other metadata (``access.published=true``)::

    access:
      visibility: public          # public | private | project:NAME
      published: true             # a managed dataset anonymous readers may see
      published_at: 2026-12-01T10:00:00Z
      published_by: alice
      snapshot: 3F2K...           # Icechunk products: the snapshot served (the newest
      tag: v2                     #   that passed its check); tag when published at one

A record without it is ``visibility: public``, unpublished. Publishing always writes
``visibility`` too, so that a query on it never meets a published record without one.

Who sees what (:meth:`Principal.query_conditions` is the same rule as a query):

============  ===============================================================
role          sees
============  ===============================================================
anonymous     published ∧ public (and only when the catalog allows anonymous reads)
reader        published ∧ (public ∨ project:P of one of the reader's projects)
writer        every record (writers publish, so they see what is not published yet)
admin         every record
============  ===============================================================

``private`` therefore means: writers and admins only, published or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from arcodex.errors import ValidationError
from arcodex.model import Condition, Record

__all__ = [
    "ACCESS_KEY",
    "ANONYMOUS",
    "ROLES",
    "Principal",
    "Role",
    "check_visibility",
    "is_published",
    "record_access",
    "visibility_of",
]

#: The metadata key holding a record's access block.
ACCESS_KEY = "access"
Role = Literal["anonymous", "reader", "writer", "admin"]
#: Roles from least to most trusted.
ROLES: tuple[Role, ...] = ("anonymous", "reader", "writer", "admin")


def check_visibility(value: str) -> str:
    """``value`` if it is ``public``, ``private`` or ``project:NAME``, else a ValidationError."""
    if value in ("public", "private"):
        return value
    name = value.removeprefix("project:")
    if value.startswith("project:") and name and name.replace("-", "").replace("_", "").isalnum():
        return value
    raise ValidationError(
        f"visibility {value!r}: give public, private or project:NAME "
        "(NAME of letters, digits, - and _)"
    )


def record_access(record: Record) -> dict[str, Any]:
    """The record's access block (a copy; empty when it has none)."""
    block = record.metadata.get(ACCESS_KEY)
    return dict(block) if isinstance(block, Mapping) else {}


def visibility_of(record: Record) -> str:
    value = record_access(record).get("visibility")
    return value if isinstance(value, str) else "public"


def is_published(record: Record) -> bool:
    return record_access(record).get("published") is True


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user with a role and projects, or nobody (anonymous)."""

    name: str | None = None
    role: Role = "anonymous"
    projects: frozenset[str] = field(default_factory=frozenset)

    @property
    def anonymous(self) -> bool:
        return self.name is None

    def at_least(self, role: Role) -> bool:
        """Is this principal's role ``role`` or a more trusted one?"""
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees_everything(self) -> bool:
        return self.at_least("writer")

    def can_see(self, record: Record) -> bool:
        if self.sees_everything():
            return True
        if not is_published(record):
            return False
        visibility = visibility_of(record)
        if visibility == "public":
            return True
        project = visibility.removeprefix("project:")
        return self.role == "reader" and project != visibility and project in self.projects

    def query_conditions(self) -> list[Condition]:
        """Conditions that, added to any query, keep only the records this principal sees.

        The same rule as :meth:`can_see`, so that counts, pages and search agree with it.
        """
        if self.sees_everything():
            return []
        allowed: list[Any] = ["public"]
        if self.role == "reader":
            allowed += [f"project:{name}" for name in sorted(self.projects)]
        return [
            Condition(field=f"{ACCESS_KEY}.published", value=True),
            Condition(field=f"{ACCESS_KEY}.visibility", op="in", value=allowed),
        ]


#: Nobody: the principal of a request without credentials.
ANONYMOUS = Principal()
