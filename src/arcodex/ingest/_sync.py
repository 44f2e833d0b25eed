"""Sync: an ingested dataset brought up to date with its provider, in time
proportional to what is new.

:func:`plan_sync` is the dry run: it reads the dataset record (which template
and extent made it, ``metadata.ingest``), the periods its repository holds
(the cursor, :func:`~arcodex.ingest.committed_periods`) and asks the provider
what it has up to ``end`` (default now), clamped to the template's
availability. The action follows from the template's ``sync`` kind:

- ``temporal``: ``append`` the missing periods (the new ones after the last
  held, and any gap a failed period left) through :func:`~arcodex.ingest.ingest`,
  one commit each; or ``up_to_date``.
- ``release``: ask the provider for its current release (the optional
  provider method ``release(params) -> str | None``, see :data:`RELEASE_METHOD`);
  when it differs from the release the dataset records (``metadata.ingest.release``),
  ``rematerialize``: every period is built again on a branch of the same
  Icechunk repository, beside ``main``, which is switched to it only once the
  build is complete and passes its check; the old ``main`` is kept as the tag
  ``release-OLD`` (readable as ``ID@release-OLD``).
- ``static``: ``not_syncable``.

What a failure leaves (per-period commits are the design):

- ``append``: a period that cannot be fetched is reported and skipped; the
  periods before and after it that were fetched are committed, each on its
  own, and the record moves to them (the gap is filled by the next sync). An
  error that stops the ingestion (anything but a period's fetch failing) rolls
  the operation back: the record, its snapshot and its published state are as
  they were, and only the periods fully committed before the error are in the
  repository's ``main`` (the next sync finds them there and does not fetch them
  again).
- ``rematerialize``: any failure (a period's fetch, the check, a conflict)
  removes the build branch; ``main``, the record and what is published are
  untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arcodex.errors import ArcodexError, ConversionError, ValidationError
from arcodex.ingest._record import INGEST_KEY

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    from arcodex.catalog import Catalog
    from arcodex.convert._product import Product
    from arcodex.ingest._model import Extent, Template
    from arcodex.ingest._provider import Provider
    from arcodex.model import Record

__all__ = [
    "RELEASE_KEY",
    "RELEASE_METHOD",
    "SyncAction",
    "SyncFailure",
    "SyncPlan",
    "SyncResult",
    "plan_sync",
    "sync",
    "syncable_ids",
]

SyncAction = Literal["append", "rematerialize", "up_to_date", "not_syncable"]
#: The optional provider method a ``release`` template's provider has:
#: ``release(params) -> str | None``, the source's current release (None: it cannot say).
#: Not part of the :class:`~arcodex.ingest.Provider` protocol, so existing providers
#: are unchanged; any release other than the dataset's counts as new.
RELEASE_METHOD = "release"
#: The key of ``metadata.ingest`` holding the release a dataset was built from.
RELEASE_KEY = "release"
#: The key of ``metadata.ingest`` listing the releases kept as tags (newest last).
KEPT_KEY = "kept_releases"


class SyncPlan(BaseModel):
    """What a sync of a dataset would do, and why."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    action: SyncAction
    sync: str | None = None
    template: str | None = None
    extent: str | None = None
    #: The delta range (period ids, both included): what would be fetched.
    start: str | None = None
    end: str | None = None
    #: The period ids that would be fetched.
    missing: list[str] = Field(default_factory=list)
    #: How many periods the dataset holds, and its last one.
    held: int = 0
    last_period: str | None = None
    #: The provider's current release and the dataset's (release templates).
    release: str | None = None
    dataset_release: str | None = None
    reasons: list[str] = Field(default_factory=list)


class SyncFailure(BaseModel):
    """A period that could not be synced, and why."""

    period: str
    message: str


class SyncResult(BaseModel):
    """What a sync did (``plan``: what it set out to do)."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    action: SyncAction
    plan: SyncPlan
    done: list[str] = Field(default_factory=list)
    failed: list[SyncFailure] = Field(default_factory=list)
    #: A rematerialisation replaced the dataset's ``main`` with the new release.
    switched: bool = False
    #: The tag the previous version is kept as (rematerialize).
    kept_tag: str | None = None
    operation_id: str | None = None
    snapshot: str | None = None
    check: str | None = None
    #: What stopped a rematerialisation (the dataset was left as it was).
    error: str | None = None
    #: Stopped by ``cancelled`` (the dataset was left as it was).
    cancelled: bool = False
    reasons: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and self.error is None and self.check in (None, "pass", "warn")


@dataclass
class _Subject:
    """A dataset record with what syncs it: its template, extent, provider and repository."""

    record: Record
    template: Template
    extent: Extent
    provider: Provider
    params: dict[str, Any]
    product: Product
    held: list[str]
    #: The provider's periods the plan asked for (before availability), and over which range.
    found: list[pd.Period] | None = None
    asked: tuple[pd.Period, pd.Period] | None = None


# -- planning ------------------------------------------------------------------------------


def plan_sync(
    catalog: Catalog,
    record_id: str,
    *,
    end: str | None = None,
    now: datetime | None = None,
) -> SyncPlan:
    """What :func:`sync` would do to dataset ``record_id`` now; nothing is written.

    Args:
        catalog: The catalog holding the dataset record.
        record_id: The dataset's record id (``TEMPLATE+EXTENT``) or a unique prefix.
        end: The last period to sync to (an id or a date; default: the last period
            that has ended by now), clamped to the template's availability.
        now: The time availability is judged at (default: now).

    Raises:
        NotFoundError: No record matches ``record_id``.
        LoadError: The templates or extents do not load.
    """
    subject, plan = _subject(catalog, record_id)
    if subject is None:
        return plan
    return _plan(subject, plan, end, now or datetime.now(UTC))


def _subject(catalog: Catalog, record_id: str) -> tuple[_Subject | None, SyncPlan]:
    """The record's sync subject, or None and a ``not_syncable`` plan saying why."""
    from arcodex.convert._access import source_options
    from arcodex.convert._locate import resolve_product
    from arcodex.ingest._cursor import committed_periods
    from arcodex.ingest._loading import load_extents, load_templates
    from arcodex.ingest._registry import get_provider

    record = catalog.get(record_id)
    info = record.metadata.get(INGEST_KEY)
    plan = SyncPlan(record_id=record.id, action="not_syncable")
    if not isinstance(info, dict) or not info.get("template") or not info.get("extent"):
        plan.reasons.append(f"{record.id} was not made by an ingestion; nothing to sync")
        return None, plan
    plan.template, plan.extent = str(info["template"]), str(info["extent"])
    plan.dataset_release = info.get(RELEASE_KEY)
    template = load_templates(catalog).get(plan.template)
    extent = load_extents(catalog).get(plan.extent)
    if template is None or extent is None:
        what = f"template {plan.template!r}" if template is None else f"extent {plan.extent!r}"
        plan.reasons.append(
            f"its {what} is no longer defined; restore it (`arcodex templates`, "
            "`arcodex extents`) to sync"
        )
        return None, plan
    plan.sync = template.sync
    if template.sync == "static":
        plan.reasons.append("static template: its data does not change, nothing to sync")
        return None, plan
    provider = get_provider(template.provider.name, catalog)
    product = _ingested_product(catalog, record) or resolve_product(
        record.id, catalog, None, source_options(catalog, None, None), None, "main"
    )
    held = committed_periods(product.repository())
    plan.held, plan.last_period = len(held), (held[-1] if held else None)
    if not held:
        plan.reasons.append(
            "the dataset holds no committed period; run `arcodex ingest` for it first"
        )
        return None, plan
    params = {**template.provider.params, "period": template.period}
    return _Subject(record, template, extent, provider, params, product, held), plan


def _ingested_product(catalog: Catalog, record: Record) -> Product | None:
    """The Icechunk repository on a local path that an ingestion made for ``record``,
    without detecting what it is (it is one, with no group, no levels and no virtual
    chunks: the ingestion wrote it); None for any other record, or when the repository
    is not there (detecting it says why)."""
    from arcodex.convert._target import Target
    from arcodex.ingest._repository import OpenedOnce
    from arcodex.model import LocalPath

    primary = next((a for a in record.artifacts if a.role == "primary"), None)
    made = (record.metadata.get("convert") or {}).get("product") or {}
    if primary is None or primary.format != "icechunk" or made.get("format") != "icechunk":
        return None
    if made.get("group") or not isinstance(primary.locator, LocalPath):
        return None
    target = Target.of(catalog.locate(primary))
    return OpenedOnce("icechunk", target) if target.exists() else None


def _plan(subject: _Subject, plan: SyncPlan, end: str | None, now: datetime) -> SyncPlan:
    from arcodex.ingest._periods import parse_period, period_id, period_range

    template = subject.template
    kind = template.period
    # By default, the last period that has ended by now.
    asked = parse_period(end, kind) if end is not None else parse_period(_moment(now), kind) - 1
    last = _clamped(template, asked, now, plan.reasons)
    held = subject.held
    if template.sync == "release":
        return _plan_release(subject, plan, last, now)
    ids = set(held)
    inner = [p for p in period_range(held[0], held[-1], kind) if period_id(p, kind) not in ids]
    first = inner[0] if inner else parse_period(held[-1], kind) + 1
    if last is None or first > last:
        plan.action = "up_to_date"
        plan.reasons.append(
            f"up to date: it holds every period to {held[-1]}"
            + (f", and the end is {period_id(last, kind)}" if last is not None else "")
        )
        return plan
    found = _available(subject, first, last, now)
    missing = [period_id(p, kind) for p in found if period_id(p, kind) not in ids]
    if not missing:
        plan.action = "up_to_date"
        plan.reasons.append(
            f"nothing new: the provider has no period from {period_id(first, kind)} to "
            f"{period_id(last, kind)} that the dataset lacks"
        )
        return plan
    gaps = [m for m in missing if parse_period(m, kind) < parse_period(held[-1], kind)]
    if gaps:
        plan.reasons.append(
            f"fills {len(gaps)} gap(s) a failed period left: {', '.join(gaps[:10])}"
        )
    plan.action, plan.missing = "append", missing
    plan.start, plan.end = missing[0], missing[-1]
    plan.reasons.append(
        f"{len(missing)} new period(s) after {held[-1]}: {missing[0]} to {missing[-1]}"
        if not gaps
        else f"{len(missing)} period(s) to fetch: {missing[0]} to {missing[-1]}"
    )
    return plan


def _plan_release(
    subject: _Subject, plan: SyncPlan, last: pd.Period | None, now: datetime
) -> SyncPlan:
    from arcodex.ingest._periods import parse_period, period_id

    kind = subject.template.period
    method = getattr(subject.provider, RELEASE_METHOD, None)
    name = subject.template.provider.name
    if not callable(method):
        plan.reasons.append(
            f"provider {name!r} has no release(params) method, so it cannot say when a new "
            "release is out; nothing to sync"
        )
        return plan
    current = method(subject.params)
    plan.release = None if current is None else str(current)
    if plan.release is None:
        plan.reasons.append(f"provider {name!r} reports no release; nothing to sync")
        return plan
    if plan.release == plan.dataset_release:
        plan.action = "up_to_date"
        plan.reasons.append(f"up to date: release {plan.release} is the one the dataset holds")
        return plan
    first = parse_period(subject.held[0], kind)
    if last is None or last < first:
        plan.reasons.append("no period of the dataset's range is available; nothing to build")
        return plan
    plan.action = "rematerialize"
    plan.reasons.append(
        f"release {plan.release} found (dataset holds {plan.dataset_release})"
        if plan.dataset_release
        else f"release {plan.release} found (the dataset records no release)"
    )
    plan.start, plan.end = period_id(first, kind), period_id(last, kind)
    plan.missing = [period_id(p, kind) for p in _available(subject, first, last, now)]
    return plan


def _available(subject: _Subject, first: pd.Period, last: pd.Period, now: datetime) -> list[Any]:
    """The provider's periods from ``first`` to ``last`` that availability lets out now."""
    from arcodex.ingest._availability import available

    found = sorted(subject.provider.periods(first, last, subject.params))
    subject.found, subject.asked = found, (first, last)
    return available(found, subject.template.availability, now)


def _moment(now: datetime) -> str:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    instant = pd.Timestamp(now)
    if instant.tzinfo is not None:
        instant = instant.tz_convert("UTC").tz_localize(None)
    return str(instant)


def _clamped(
    template: Template, asked: pd.Period, now: datetime, reasons: list[str]
) -> pd.Period | None:
    """``asked``, or the last period availability allows if that is earlier (the reason
    said in ``reasons``); None when no period is available yet."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    from pandas.tseries.frequencies import to_offset  # type: ignore[import-untyped, unused-ignore]

    from arcodex.ingest._periods import parse_period, period_id

    kind = template.period
    availability = template.availability
    try:
        lag = to_offset(availability.lag)
    except ValueError as exc:
        raise ValidationError(
            f"bad availability lag {availability.lag!r}; write a pandas offset such as 5D or 36h"
        ) from exc
    # A period is out once its end (the next one's start) plus the lag has passed.
    limits = [
        (f"lag {availability.lag}", parse_period(str(pd.Timestamp(_moment(now)) - lag), kind) - 1)
    ]
    if availability.cutoff is not None:
        limits.append((f"cutoff {availability.cutoff}", parse_period(availability.cutoff, kind)))
    last = asked
    for why, limit in limits:
        if limit < last:
            reasons.append(
                f"clamped to availability ({why}): end {period_id(last, kind)} -> "
                f"{period_id(limit, kind)}"
            )
            last = limit
    return last


# -- syncing -------------------------------------------------------------------------------


def sync(
    catalog: Catalog,
    record_id: str,
    *,
    end: str | None = None,
    now: datetime | None = None,
    user: str | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> SyncResult:
    """Bring dataset ``record_id`` up to date with its provider, as :func:`plan_sync` plans.

    ``append`` runs :func:`~arcodex.ingest.ingest` for the missing periods only (one
    commit each); ``rematerialize`` builds the new release beside the old one and
    switches only once it is complete and checked (the old kept as a tag). What a
    failure leaves is described in this module's docstring.

    Args:
        catalog: The catalog holding the dataset record.
        record_id: The dataset's record id (``TEMPLATE+EXTENT``) or a unique prefix.
        end: The last period to sync to (default: now), clamped to availability.
        now: The time availability is judged at (default: now).
        user: Who syncs (default: the current user).
        cancelled: Asked before each period; once it answers True the sync stops there
            and leaves the dataset as it was (``main``, the record, what is published),
            undoing what it had committed, and the result says ``cancelled``.

    Raises:
        NotFoundError: No record matches ``record_id``.
        ConversionError: The repository cannot be written (someone committed meanwhile).
    """
    when = now or datetime.now(UTC)
    subject, plan = _subject(catalog, record_id)
    if subject is not None:
        plan = _plan(subject, plan, end, when)
    result = SyncResult(record_id=plan.record_id, action=plan.action, plan=plan)
    if subject is None or plan.action in ("up_to_date", "not_syncable"):
        return result
    if cancelled is None:
        if plan.action == "append":
            return _append(catalog, subject, plan, result, when, user)
        return _rematerialize(catalog, subject, plan, result, user)
    product = subject.product
    repo = product.repository() if product.format == "icechunk" else None
    before = str(repo.lookup_branch(product.branch)) if repo is not None else None
    token = _CANCELLED.set(cancelled)
    try:
        if plan.action == "append":
            return _append(catalog, subject, plan, result, when, user)
        return _rematerialize(catalog, subject, plan, result, user)
    except _Cancelled:
        # The unit of work rolled back (the record is as it was); the periods the
        # append committed to the branch are taken back too.
        head = str(repo.lookup_branch(product.branch)) if repo is not None else None
        if repo is not None and head != before:
            repo.reset_branch(product.branch, before, from_snapshot_id=head)
        result.cancelled, result.done, result.switched = True, [], False
        result.reasons.append("cancelled; the dataset was left as it was")
        return result
    finally:
        _CANCELLED.reset(token)


class _Cancelled(Exception):
    """Raised before a period once the sync is cancelled; never leaves :func:`sync`."""


#: The cancel test of the :func:`sync` running in this context.
_CANCELLED: ContextVar[Callable[[], bool] | None] = ContextVar("sync_cancelled", default=None)


def _stop_if_cancelled() -> bool:
    """Raise :class:`_Cancelled` once the running sync is cancelled (never answers True:
    an ingestion told to stop would register what it committed)."""
    asked = _CANCELLED.get()
    if asked is not None and asked():
        raise _Cancelled
    return False


def _append(
    catalog: Catalog,
    subject: _Subject,
    plan: SyncPlan,
    result: SyncResult,
    now: datetime,
    user: str | None,
) -> SyncResult:
    """The missing periods, through the ingestion engine (which skips those held)."""
    from arcodex.ingest._ingestion import Known, ingest
    from arcodex.ingest._periods import parse_period

    assert plan.start is not None and plan.end is not None
    known = None
    if subject.found is not None and subject.asked is not None:
        kind = subject.template.period
        first, last = subject.asked
        if first <= parse_period(plan.start, kind) and parse_period(plan.end, kind) <= last:
            known = Known(subject.record, subject.product, subject.held, subject.found)
    done = ingest(
        catalog,
        subject.template,
        subject.extent,
        plan.start,
        plan.end,
        provider=subject.provider,
        user=user,
        now=now,
        known=known,
        cancelled=_stop_if_cancelled,
    )
    result.done = list(done.done)
    result.failed = [SyncFailure(period=f.period, message=f.message) for f in done.failed]
    result.operation_id = done.operation_id
    result.snapshot = done.snapshot
    result.check = done.check
    result.reasons = list(done.reasons)
    if result.failed:
        result.reasons.append(
            "the periods that could not be fetched are left out; the next sync fetches them"
        )
    return result


def _rematerialize(
    catalog: Catalog, subject: _Subject, plan: SyncPlan, result: SyncResult, user: str | None
) -> SyncResult:
    """Every period of the new release built on a branch; ``main`` switched to it only
    once complete and checked, the old ``main`` tagged first."""
    from arcodex.catalog._events import current_user

    user = user or current_user()
    parameters = {
        "record": subject.record.id,
        "action": "rematerialize",
        "release": plan.release,
        "previous_release": plan.dataset_release,
        "start": plan.start,
        "end": plan.end,
    }
    try:
        with catalog.unit_of_work(
            "sync", user=user, inputs=[subject.record.id], parameters=parameters
        ) as uow:
            result.operation_id = uow.operation.id
            _build_and_switch(catalog, uow, subject, plan, result, user)
    except ArcodexError as exc:
        result.switched = False
        result.kept_tag = None
        result.error = str(exc)
        result.reasons.append(
            f"{exc}; the dataset was left as it was (release {plan.dataset_release or 'unknown'} "
            "stays published and readable)"
        )
    return result


def _build_and_switch(
    catalog: Catalog,
    uow: Any,
    subject: _Subject,
    plan: SyncPlan,
    result: SyncResult,
    user: str,
) -> None:
    import icechunk

    from arcodex.ingest._cursor import commit_message, commit_metadata
    from arcodex.ingest._fetching import PeriodShape, fetched, shaped
    from arcodex.ingest._ingestion import check_repository
    from arcodex.ingest._periods import parse_period
    from arcodex.ingest._provider import FetchError
    from arcodex.ingest._record import dataset_record
    from arcodex.ingest._repository import write_period

    template, extent = subject.template, subject.extent
    repo = subject.product.repository()
    old_head = str(repo.lookup_branch("main"))
    root = str(list(repo.ancestry(branch="main"))[-1].id)
    branch = f"arcodex-sync-{uow.operation.id}"
    repo.create_branch(branch, root)
    uow.on_rollback(
        "remove the unfinished rebuild's branch", lambda: _drop_branch(repo, branch), branch=branch
    )
    building = replace(subject.product, branch=branch)
    shape: PeriodShape | None = None
    for pid in plan.missing:
        _stop_if_cancelled()
        period = parse_period(pid, template.period)
        try:
            ds = fetched(subject.provider, period, extent, subject.params, pid)
            ds = shaped(ds, template, period, pid, shape)
        except (FetchError, ValidationError) as exc:
            result.failed.append(SyncFailure(period=pid, message=str(exc)))
            raise ConversionError(
                f"release {plan.release}: period {pid} could not be fetched ({exc}), so the "
                "rebuild is incomplete and was removed"
            ) from exc
        write_period(
            building,
            ds,
            first=shape is None,
            chunks=template.target.chunks,
            message=commit_message(pid, template.id, extent.id),
            metadata=commit_metadata(pid, template.id, extent.id, uow.operation.id),
        )
        shape = shape or PeriodShape.of(ds)
        result.done.append(pid)
        uow.mark("period_committed", period=pid, branch=branch)
    result.check, reasons = check_repository(building, list(plan.missing), template)
    result.reasons.extend(reasons)
    if result.check != "pass":
        raise ConversionError(
            f"release {plan.release}: the rebuild failed its check ({'; '.join(reasons)})"
        )
    new_head = str(repo.lookup_branch(branch))
    tag = _free_tag(repo, f"release-{_tag_part(plan.dataset_release or 'unknown')}")
    repo.create_tag(tag, old_head)
    uow.on_rollback("remove the tag of the old release", lambda: repo.delete_tag(tag), tag=tag)
    try:
        repo.reset_branch("main", new_head, from_snapshot_id=old_head)
    except icechunk.IcechunkError as exc:
        raise ConversionError(
            f"someone committed to {subject.product.target.url} during the rebuild; run the "
            f"sync again ({exc})"
        ) from exc
    uow.on_rollback(
        "put main back on the old release",
        lambda: repo.reset_branch("main", old_head, from_snapshot_id=new_head),
        snapshot=old_head,
    )
    uow.transition("artifact_write_succeeded", snapshot=new_head, tag=tag)
    current = subject.record
    record = dataset_record(
        template,
        extent,
        subject.product,
        None,
        periods=list(plan.missing),
        snapshot=new_head,
        check=result.check,
        operation_id=uow.operation.id,
        user=user,
        current=current,
    )
    info = dict(record.metadata[INGEST_KEY])
    previous = (current.metadata.get(INGEST_KEY) or {}).get(KEPT_KEY) or []
    info[RELEASE_KEY] = plan.release
    info[KEPT_KEY] = [
        *previous,
        {"release": plan.dataset_release, "tag": tag, "snapshot": old_head},
    ]
    record.metadata[INGEST_KEY] = info
    catalog._replace_record(uow, current, record)
    result.switched, result.kept_tag, result.snapshot = True, tag, new_head
    # main now holds every snapshot the branch made; the branch name is no longer needed.
    uow.after_commit(lambda: _drop_branch(repo, branch))


def _drop_branch(repo: Any, branch: str) -> None:
    import icechunk

    with suppress(icechunk.IcechunkError):  # never made, or gone already
        repo.delete_branch(branch)


def _tag_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "unknown"


def _free_tag(repo: Any, wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``-3``… if a tag of that name is kept already."""
    taken = set(repo.list_tags())
    tag, n = wanted, 1
    while tag in taken:
        n += 1
        tag = f"{wanted}-{n}"
    return tag


# -- several -------------------------------------------------------------------------------


def syncable_ids(catalog: Catalog) -> list[str]:
    """The ids of the catalog's ingested datasets (those ``arcodex sync --all`` syncs)."""
    return sorted(catalog.ids(kind="dataset", tags=["ingest"]))
