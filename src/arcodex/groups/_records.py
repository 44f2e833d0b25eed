"""How a group lives in a catalog: one ``collection`` record and one ``group-member``
record per member, and the status views read from them.

The group record holds the group's name, defaults, the file it came from, its members
in order, and the STAC Collection its products make (``metadata.stac.where``: the
term every product of the group matches). A member record holds the member's spec,
its status (``pending | running | done | warn | failed``), the phase and reason, what
each phase found (timings, sizes, operation ids, the product's record id, the scan
summary and the check report), its source fingerprint, a bounded log and history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from arcodex.errors import NotFoundError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._opstate import Leases
    from arcodex.model import Record

__all__ = [
    "GROUP_KIND",
    "MEMBER_KIND",
    "PHASES",
    "STATUSES",
    "GroupStatus",
    "MemberStatus",
    "find_group",
    "group_records",
    "member_records",
    "product_of",
]

GROUP_KIND = "collection"
MEMBER_KIND = "group-member"
#: The metadata term a group's products carry: ``member_of.group`` and ``member_of.member``.
MEMBER_OF = "member_of"
PHASES = ("scan", "compute", "validate")
STATUSES = ("pending", "running", "done", "warn", "failed")
MemberState = Literal["pending", "running", "done", "warn", "failed"]
#: How many log lines and status changes a member keeps.
LOG_LINES = 200
HISTORY = 50


@dataclass
class MemberStatus:
    """A member as its record says (a ``running`` member whose process is gone is shown
    as it was before, with ``stale`` set)."""

    id: str
    status: str
    phase: str | None = None
    reason: str | None = None
    seconds: float | None = None
    bytes: int | None = None
    operation: str | None = None
    product: str | None = None
    updated_at: str | None = None
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, record: Record, leases: Leases) -> MemberStatus:
        meta = record.metadata
        status = str(meta.get("status") or "pending")
        stale = status == "running" and not alive(meta.get("run"), leases)
        return cls(
            id=str(meta.get("member")),
            status=str(meta.get("previous") or "pending") if stale else status,
            phase=meta.get("phase"),
            reason=meta.get("reason"),
            seconds=meta.get("seconds"),
            bytes=meta.get("bytes"),
            operation=meta.get("operation"),
            product=meta.get("product"),
            updated_at=record.updated_at.isoformat() if record.updated_at else None,
            stale=stale,
        )


@dataclass
class GroupStatus:
    """A group: its name, title, counts by status, and each member's status in order."""

    name: str
    title: str | None = None
    record_id: str | None = None
    source: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    members: list[MemberStatus] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for member in self.members:
            counts[member.status] = counts.get(member.status, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "record": self.record_id,
            "source": self.source,
            "defaults": dict(self.defaults),
            "total": len(self.members),
            "counts": self.counts,
            "members": [m.to_dict() for m in self.members],
        }

    def _repr_html_(self) -> str:
        from arcodex._html import Raw, badge, box, code, esc, pairs, section, size, table

        counts = ", ".join(f"{badge(k)} {n}" for k, n in self.counts.items() if n)
        heading = f"{code(self.name)} · {len(self.members)} members" + (
            f" · {counts}" if counts else ""
        )
        about = [
            (k, v)
            for k, v in (("title", self.title), ("record", self.record_id), ("source", self.source))
            if v
        ]
        rows = (
            (
                code(m.id),
                Raw(badge(m.status) + (" <em>(stale: its run is gone)</em>" if m.stale else "")),
                m.phase or "",
                Raw(esc(m.reason, 500)),
                f"{m.seconds:.1f} s" if m.seconds is not None else "",
                size(m.bytes),
                code(m.product) if m.product else "",
                m.updated_at or "",
            )
            for m in self.members
        )
        members = table(
            ("member", "status", "phase", "reason", "time", "size", "product", "updated"),
            rows,
            total=len(self.members),
            what="members",
        )
        return box(
            "Group",
            heading,
            pairs(about) if about else "",
            section("Members", members if self.members else f"<p>{esc('none')}</p>"),
        )


def alive(run: Any, leases: Leases) -> bool:
    """Whether the run a ``running`` member's claim names still runs: the lease of its
    unit of work (seen from every host of a PostgreSQL catalog; a pid of this host else)."""
    if not isinstance(run, dict):
        return False
    operation = run.get("operation")
    return leases.running(str(operation) if operation else None, run)


def group_records(cat: Catalog) -> list[Record]:
    """Every group's record, by name."""
    found = []
    cursor = None
    while True:
        page = cat.search(kind=GROUP_KIND, limit=500, cursor=cursor)
        found += [r for r in page.records if isinstance(r.metadata.get("group"), dict)]
        cursor = page.next_cursor
        if not cursor:
            break
    return sorted(found, key=lambda r: str(r.metadata["group"].get("name")))


def find_group(cat: Catalog, name: str) -> Record | None:
    for record in group_records(cat):
        if record.metadata["group"].get("name") == name:
            return record
    return None


def get_group(cat: Catalog, name: str) -> Record:
    record = find_group(cat, name)
    if record is None:
        raise NotFoundError(f"no group named {name!r}; run `arcodex group list` to see the groups")
    return record


def member_records(cat: Catalog, name: str) -> list[Record]:
    """The group's member records, in the order of its members file."""
    found: list[Record] = []
    cursor = None
    while True:
        page = cat.search(kind=MEMBER_KIND, limit=500, cursor=cursor, group=name)
        found += page.records
        cursor = page.next_cursor
        if not cursor:
            break
    return sorted(found, key=lambda r: int(r.metadata.get("row") or 0))


def product_of(cat: Catalog, name: str, member: str) -> Record | None:
    """The product record a member made (the newest, should there be more)."""
    terms = {f"{MEMBER_OF}.group": name, f"{MEMBER_OF}.member": member}
    page = cat.search(kind="dataset", status="active", limit=None, **terms)
    return max(page.records, key=lambda r: r.created_at, default=None)


def status_of(cat: Catalog, name: str) -> GroupStatus:
    record = get_group(cat, name)
    group = record.metadata["group"]
    return GroupStatus(
        name=name,
        title=record.title,
        record_id=record.id,
        source=group.get("source"),
        defaults=dict(group.get("defaults") or {}),
        members=[MemberStatus.of(r, cat.leases) for r in member_records(cat, name)],
    )
