"""``ingest``: a dataset of a template over an extent, one committed period at a time.

The steps, in order: **plan** (the provider's periods, availability applied, less
those the repository already holds), then for each missing period **fetch** it,
**validate** it (its times inside the period, its variables those of the
dataset), **transform** it and **write** it as one Icechunk commit carrying the
period id (the cursor, :mod:`arcodex.ingest._cursor`); then **check** the
repository and **register** its record, and **publish** it if asked.

A period whose fetch fails (:class:`~arcodex.ingest.FetchError`) is reported
and skipped; the others go on. A failure or a kill keeps every committed
period, and the next run starts from what the repository holds, fetching
nothing it has. With ``overwrite`` the dataset is rebuilt beside the old one,
which stays the record's until the new one is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from arcodex.errors import NotFoundError, ValidationError
from arcodex.ingest._availability import available
from arcodex.ingest._cursor import commit_message, commit_metadata, committed_periods
from arcodex.ingest._fetching import PeriodShape, fetched, shaped
from arcodex.ingest._periods import parse_period, period_id
from arcodex.ingest._provider import FetchError
from arcodex.ingest._record import INGEST_KEY, Appended, dataset_record, record_id

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    from arcodex.catalog import Catalog
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.convert._place import Placed
    from arcodex.convert._product import Product
    from arcodex.ingest._model import Extent, Template
    from arcodex.ingest._provider import Provider
    from arcodex.ingest._repository import Opened
    from arcodex.model import Record

__all__ = ["IngestionResult", "Known", "PeriodFailure", "ingest"]

#: ``progress(period, done, total)``: called before each period is fetched, and once at
#: the end with the period ``""``.
IngestProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PeriodFailure:
    """A period that could not be ingested, and why."""

    period: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"period": self.period, "message": self.message}


@dataclass(frozen=True)
class Known:
    """What a caller has just read of the dataset it ingests into (the sync's planner),
    so that the ingestion does not read it again: its record, its repository, the
    periods committed there, and the provider's periods (before availability) over a
    range holding every period the ingestion is asked for."""

    record: Record
    product: Product
    held: list[str]
    found: list[pd.Period]


@dataclass
class IngestionResult:
    """What an ingestion did.

    ``done``: the periods committed by this run; ``failed``: those that could not be
    fetched or were refused; ``skipped``: those the dataset already held (not
    fetched); ``unavailable``: those the provider has that availability holds back.
    """

    record_id: str
    template: str
    extent: str
    operation_id: str | None = None
    done: list[str] = field(default_factory=list)
    failed: list[PeriodFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    #: The scope was already materialised: nothing was fetched or written.
    reused: bool = False
    #: With ``overwrite``: whether the rebuilt dataset replaced the old one.
    switched: bool = False
    #: Stopped by ``cancelled`` before these periods (what was committed is kept).
    cancelled: bool = False
    pending: list[str] = field(default_factory=list)
    check: str | None = None
    reasons: list[str] = field(default_factory=list)
    snapshot: str | None = None
    published: bool = False
    record: Record | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and self.check in (None, "pass", "warn")

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record_id,
            "template": self.template,
            "extent": self.extent,
            "operation": self.operation_id,
            "done": self.done,
            "failed": [f.to_dict() for f in self.failed],
            "skipped": self.skipped,
            "unavailable": self.unavailable,
            "reused": self.reused,
            "switched": self.switched,
            "cancelled": self.cancelled,
            "pending": self.pending,
            "check": self.check,
            "reasons": self.reasons,
            "snapshot": self.snapshot,
            "published": self.published,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestionResult:
        """The result :meth:`to_dict` gave (without the record itself)."""
        return cls(
            record_id=str(data["record"]),
            template=str(data["template"]),
            extent=str(data["extent"]),
            operation_id=data.get("operation"),
            done=list(data.get("done", [])),
            failed=[
                PeriodFailure(str(f["period"]), str(f["message"])) for f in data.get("failed", [])
            ],
            skipped=list(data.get("skipped", [])),
            unavailable=list(data.get("unavailable", [])),
            reused=bool(data.get("reused", False)),
            switched=bool(data.get("switched", False)),
            cancelled=bool(data.get("cancelled", False)),
            pending=list(data.get("pending", [])),
            check=data.get("check"),
            reasons=list(data.get("reasons", [])),
            snapshot=data.get("snapshot"),
            published=bool(data.get("published", False)),
        )


def ingest(
    catalog: Catalog,
    template: Template,
    extent: Extent,
    start: str,
    end: str,
    *,
    provider: Provider | None = None,
    overwrite: bool = False,
    publish: bool = False,
    progress: IngestProgress | None = None,
    user: str | None = None,
    now: datetime | None = None,
    cancelled: Callable[[], bool] | None = None,
    known: Known | None = None,
) -> IngestionResult:
    """Ingest the periods from ``start`` to ``end`` (ids or dates, both included) of
    ``template`` over ``extent`` into the dataset record ``TEMPLATE+EXTENT``.

    Args:
        catalog: The catalog that keeps the record and the operation.
        template: What to ingest (provider, availability, transforms, target).
        extent: Over which area.
        start: The first period (an id such as ``2020-03`` or any time inside it).
        end: The last period.
        provider: The provider to fetch from; default the template's, from the registry.
        overwrite: Rebuild the dataset beside the old one, even if it holds the periods.
        publish: Publish the dataset once its check passes.
        progress: ``progress(period, done, total)``, see :data:`IngestProgress`.
        user: Who ingests (default: the current user).
        now: The time availability is judged at (default: now).
        cancelled: Asked before each period; once it answers True the ingestion stops
            there, registers what it committed and lists the rest as ``pending``.
        known: What the caller has just read of the dataset (see :class:`Known`); used
            when it is the record's and ``overwrite`` is off.

    Raises:
        ValidationError: A bad period, or a provider parameter the provider refuses.
        ConversionError: The repository cannot be written (someone else committed meanwhile).
    """
    from arcodex.catalog._events import current_user

    user = user or current_user()
    provider = provider or _provider_of(template, catalog)
    params = {**template.provider.params, "period": template.period}
    rid = record_id(template, extent)
    result = IngestionResult(rid, template.id, extent.id)
    first, last = _period_range(template, start, end)
    if known is not None and (
        overwrite or known.record.id != rid or known.record.status == "deleted"
    ):
        known = None
    current = known.record if known is not None else _current(catalog, rid)
    parameters = {
        "template": template.id,
        "extent": extent.id,
        "start": start,
        "end": end,
        "overwrite": overwrite,
        "publish": publish,
        "record": rid,
    }
    with catalog.unit_of_work(
        "ingest", user=user, inputs=[template.id, extent.id], parameters=parameters
    ) as uow:
        result.operation_id = uow.operation.id
        if known is not None:
            product, placed, held = known.product, None, list(known.held)
        else:
            product, placed = _destination(catalog, template, extent, current, overwrite, uow)
            held = committed_periods(product.repository()) if product.target.exists() else []
        wanted, result.unavailable = _plan_periods(
            template, provider, params, first, last, held, now, known.found if known else None
        )
        ids = {period_id(p, template.period): p for p in wanted}
        result.skipped = [i for i in ids if i in held]
        todo = [(i, p) for i, p in ids.items() if i not in held]
        if not todo and not overwrite and current is not None and _describes(current, ids):
            result.reused = True
            result.snapshot = str((current.metadata.get("convert") or {}).get("snapshot") or "")
            result.check = str((current.metadata.get("convert") or {}).get("check") or "")
            result.record = current
            uow.operation.outputs = [rid]
            _save_progress(catalog, uow, len(ids), len(ids), None, [])
        else:
            uow.transition("planned", periods=len(todo), held=len(held))
            snapshot, appended, root = _fetch_and_write(
                catalog,
                uow,
                template,
                extent,
                provider,
                params,
                product,
                todo,
                held,
                result,
                progress,
                cancelled,
            )
            _finish(
                catalog,
                uow,
                template,
                extent,
                product,
                placed,
                current,
                overwrite,
                snapshot,
                result,
                user,
                held if known is not None else None,
                appended,
                root,
            )
            if result.failed:
                uow.fell_short(shortfall(result))
    if publish and result.failed:
        # A dataset with holes is not the newest good version: it is published once a
        # run has every period (the next one fetches only those that failed).
        result.reasons.append(
            f"not published: {len(result.failed)} period(s) failed "
            f"({', '.join(f.period for f in result.failed)}); run it again to fetch them"
        )
    elif publish and result.record is not None and result.check in ("pass", "warn"):
        from arcodex.catalog._access import is_published

        if not is_published(result.record) or result.switched or result.done:
            result.record = catalog.publish(rid, user=user)
        result.published = True
    elif publish and result.check not in (None, "pass", "warn"):
        result.reasons.append(f"not published: its check is {result.check!r}")
    if progress is not None:
        progress("", len(ids), len(ids))
    return result


# -- the steps -----------------------------------------------------------------------------


def _period_range(template: Template, start: str, end: str) -> tuple[pd.Period, pd.Period]:
    first, last = parse_period(start, template.period), parse_period(end, template.period)
    if last < first:
        raise ValidationError(f"end {end!r} is before start {start!r}; swap them")
    return first, last


def _plan_periods(
    template: Template,
    provider: Provider,
    params: dict[str, Any],
    first: pd.Period,
    last: pd.Period,
    held: list[str],
    now: datetime | None,
    found_before: list[pd.Period] | None = None,
) -> tuple[list[pd.Period], list[str]]:
    """The periods to hold (the provider's, available now) and those held back.

    The provider is asked only about the runs of periods the repository does not hold:
    a resume touches nothing it committed (an ``http`` template HEADs every period it
    is asked about). ``found_before``: the provider's answer over a range holding
    ``first`` to ``last``, given already; it is not asked again.
    """
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    holds = set(held)
    found: list[pd.Period] = []
    run: list[pd.Period] = []
    for period in [*pd.period_range(first, last, freq=first.freq), None]:
        committed = period is not None and period_id(period, template.period) in holds
        if committed:
            found.append(period)
        elif period is not None:
            run.append(period)
        if run and (period is None or committed):
            if found_before is None:
                found.extend(provider.periods(run[0], run[-1], params))
            else:
                found.extend(p for p in found_before if run[0] <= p <= run[-1])
            run = []
    found = sorted(found)
    kept = available(found, template.availability, now or datetime.now(UTC))
    held_back = [period_id(p, template.period) for p in found if p not in set(kept)]
    return kept, held_back


def _fetch_and_write(
    catalog: Catalog,
    uow: UnitOfWork,
    template: Template,
    extent: Extent,
    provider: Provider,
    params: dict[str, Any],
    product: Product,
    todo: list[tuple[str, pd.Period]],
    held: list[str],
    result: IngestionResult,
    progress: IngestProgress | None,
    cancelled: Callable[[], bool] | None,
) -> tuple[str | None, bool, Opened | None]:
    """Each missing period fetched, validated and transformed, then committed with the
    others of its batch (see :class:`_Batch`); the last snapshot, whether every commit
    only appended steps after the last, and the root the last commit was written in
    (see :class:`~arcodex.ingest._repository.Written`)."""
    total = len(todo) + len(result.skipped)
    count = len(result.skipped)
    opened = _opened(product) if held and todo else None
    shape, steps = _held_shape(product, opened) if held else (None, 0)
    batch = _Batch(template, extent.id, product, held, todo, steps, opened)
    snapshot = None
    for n, (pid, period) in enumerate(todo):
        if cancelled is not None and cancelled():
            result.cancelled = True
            result.pending = [i for i, _ in todo[n:]]
            break
        _save_progress(catalog, uow, count, total, pid, result.failed)
        if progress is not None:
            progress(pid, count, total)
        try:
            ds = fetched(provider, period, extent, params, pid)
            ds = shaped(ds, template, period, pid, shape)
        except (FetchError, ValidationError) as exc:
            result.failed.append(PeriodFailure(pid, str(exc)))
            catalog.events.emit(
                "ingest.period_failed",
                f"ingest {template.id}+{extent.id}: period {pid} skipped: {exc}",
                level="warning",
                operation_id=uow.operation.id,
                user=uow.operation.user,
                error=exc,
                period=pid,
            )
            count += 1
            continue
        except Exception:
            # What was fetched before a provider broke is kept, as if committed one by one.
            batch.commit(uow, result)
            raise
        if shape is None:
            shape = PeriodShape.of(ds)
        batch.add(pid, ds)
        if batch.full():
            snapshot = batch.commit(uow, result) or snapshot
            count = len(result.skipped) + len(result.done) + len(result.failed)
    snapshot = batch.commit(uow, result) or snapshot
    count = len(result.skipped) + len(result.done) + len(result.failed)
    _save_progress(catalog, uow, count, total, None, result.failed)
    return snapshot, batch.appended and bool(result.done), batch.root


class _Batch:
    """Consecutive fetched periods committed together: one commit per time chunk's worth.

    A backfill appends after everything held, so the periods of one chunk of the
    template's time chunking go in one commit (its cursor lists each of them), and
    the next batch starts on a chunk boundary. A period that fills a gap, or a
    time chunking of fewer steps than a period has, is committed alone.
    """

    def __init__(
        self,
        template: Template,
        extent: str,
        product: Product,
        held: list[str],
        todo: list[tuple[str, Any]],
        steps: int,
        opened: Opened | None = None,
    ) -> None:
        """``steps``: the time steps the held periods have; ``opened``: the session the
        first commit writes in (:func:`~arcodex.ingest._repository.open_for_append`)."""
        self.opened = opened
        self.template, self.extent, self.product, self.held = template, extent, product, held
        self.chunk = int((template.target.chunks or {}).get("time", 0) or 0)
        last = max((parse_period(h, template.period) for h in held), default=None)
        # Only an append after every held period can be batched (an insert moves steps).
        self.appending = last is None or all(p > last for _, p in todo)
        self.steps = steps if self.appending and self.chunk > 1 else 0
        self.periods: list[str] = []
        self.parts: list[Any] = []
        #: Every commit so far only appended steps after the last.
        self.appended = True
        #: The root the last commit was written in, when it was opened beforehand.
        self.root: Opened | None = None

    def add(self, pid: str, ds: Any) -> None:
        self.periods.append(pid)
        self.parts.append(ds)

    def full(self) -> bool:
        """Whether to commit now: the batch ends its chunk, or the next period (as long
        as the last) would run past it."""
        if not self.appending or self.chunk <= 1:
            return True
        pending = sum(int(p.sizes["time"]) for p in self.parts)
        boundary = (self.steps // self.chunk + 1) * self.chunk
        return self.steps + pending + int(self.parts[-1].sizes["time"]) > boundary

    def commit(self, uow: UnitOfWork, result: IngestionResult) -> str | None:
        """Write and commit the batch (nothing if empty); its snapshot."""
        if not self.periods:
            return None
        import xarray as xr

        from arcodex.ingest._repository import write_steps

        template, periods = self.template, self.periods
        # Every part has the dataset's grid (``shaped`` checked it, to a tolerance).
        ds = (
            self.parts[0]
            if len(self.parts) == 1
            else xr.concat(
                self.parts,
                dim="time",
                data_vars="minimal",
                coords="minimal",
                compat="override",
                join="override",
            )
        )
        written = write_steps(
            self.product,
            ds,
            first=not self.held,
            chunks=template.target.chunks,
            message=commit_message(periods, template.id, self.extent),
            metadata=commit_metadata(periods, template.id, self.extent, uow.operation.id),
            opened=self.opened,
        )
        self.opened = None  # committed: the next batch writes in a session of its own
        snapshot, self.appended = written.snapshot, self.appended and written.appended
        self.root = written.root
        self.steps += int(ds.sizes["time"])
        for pid in periods:
            self.held.append(pid)
            result.done.append(pid)
            uow.mark("period_committed", period=pid, snapshot=snapshot)
        self.periods, self.parts = [], []
        return snapshot


def _held_shape(product: Product, opened: Opened | None = None) -> tuple[PeriodShape, int]:
    """What the held periods share, and their time steps (``opened``: the root, read)."""
    if product.format == "icechunk":
        return PeriodShape.held(product, opened)
    return PeriodShape.of_opened(product)


def _opened(product: Product) -> Opened | None:
    """A session to append to an Icechunk ``product`` in, its root read (else None)."""
    from arcodex.ingest._repository import open_for_append

    return open_for_append(product) if product.format == "icechunk" else None


def _finish(
    catalog: Catalog,
    uow: UnitOfWork,
    template: Template,
    extent: Extent,
    product: Product,
    placed: Placed | None,
    current: Record | None,
    overwrite: bool,
    snapshot: str | None,
    result: IngestionResult,
    user: str | None,
    held: list[str] | None = None,
    appended: bool = False,
    root: Opened | None = None,
) -> None:
    """Check the repository and register (or update) its record (``held``: the periods
    it holds now, known to the caller, else read from it; ``appended``: this run only
    appended steps after the last, see :class:`~arcodex.ingest._repository.Written`)."""
    if held is None:
        held = committed_periods(product.repository()) if product.target.exists() else []
    if not held:
        result.reasons.append("no period was committed; nothing to register")
        return
    rebuilding = overwrite and current is not None
    if rebuilding and (result.failed or result.cancelled):
        # Never switch to an incomplete rebuild: the old dataset stays as it was.
        _remove(product)
        result.reasons.append(
            "the rebuild is incomplete (periods failed or it was cancelled); the dataset "
            "was left as it was"
        )
        return
    head = snapshot or _head(product)
    since = None if rebuilding else _checked_before(current, held, template)

    def registered(stored: Any = None, steps: Appended | None = None) -> Record:
        result.snapshot = head
        uow.transition("artifact_write_succeeded")
        return dataset_record(
            template,
            extent,
            product,
            placed,
            periods=held,
            snapshot=head,
            check=str(result.check),
            operation_id=uow.operation.id,
            user=user,
            current=current,
            stored=stored,
            appended=steps,
        )

    tail = (
        _appended_steps(product, head, since[1], root) if appended and since is not None else None
    )
    if tail is not None and since is not None:
        # Only steps after those of a state that passed were written: the check and the
        # record read those (and the last before them), whatever the dataset's length.
        result.check, reasons = judge_times(tail.decoded, held[since[0] :], held, template)
        result.reasons.extend(reasons)
        # A failed one is described again: its steps are not what the record assumes.
        record = registered(steps=tail if result.check == "pass" else None)
    else:
        # The check and the record read the snapshot just committed, opened once.
        with product.open(raw=True, snapshot=head, indexes=False) as stored:
            result.check, reasons = check_repository(product, held, template, stored, since)
            result.reasons.extend(reasons)
            if rebuilding and result.check == "fail":
                # Only a complete and checked rebuild replaces the dataset: the record, its
                # repository and what is published stay as they were.
                _remove(product)
                result.reasons.append(
                    "the rebuild failed its check; the dataset was left as it was"
                )
                return
            record = registered(stored=stored)
    replaced = _product_of(catalog, current) if rebuilding and current is not None else None
    if current is None:
        (record,) = catalog._write_records(uow, [record])
    else:
        record = catalog._replace_record(uow, current, record)
    result.record = record
    if rebuilding and placed is not None and current is not None:
        result.switched = True
        old = next((a for a in current.artifacts if a.role == "primary"), None)
        if old is not None and old.managed and replaced is not None:
            # Only once the record points at the new repository is the old one let go.
            uow.after_commit(lambda: _remove(replaced))


def check_repository(
    product: Product,
    held: list[str],
    template: Template,
    stored: Any = None,
    since: tuple[int, int] | None = None,
) -> tuple[str, list[str]]:
    """``("pass" | "fail", reasons)``: the time axis strictly increasing and every
    committed period present in it, as the repository's branch now is.

    ``stored``: the dataset as stored (``decode_cf=False``), opened already, read instead
    of the branch. ``since``: ``(periods, steps)`` of a state that passed this check and
    that the rest of ``held`` was appended after: only those periods and the steps from
    the last of that state on are read (the earlier steps were not rewritten).
    """
    if stored is None:
        with product.open() as ds:
            if "time" not in ds.variables:
                return "fail", ["the dataset has no time coordinate"]
            times = ds["time"].values
    else:
        if "time" not in stored.variables:
            return "fail", ["the dataset has no time coordinate"]
        import xarray as xr

        if since is not None and int(stored.sizes["time"]) < since[1]:
            since = None  # fewer steps than before: not an append, all of it is checked
        tail = slice(max(since[1] - 1, 0), None) if since is not None else slice(None)
        times = xr.decode_cf(stored[["time"]].isel(time=tail))["time"].values
    checked = held[since[0] :] if since is not None and stored is not None else held
    return judge_times(times, checked, held, template)


def judge_times(
    times: Any, checked: list[str], held: list[str], template: Template
) -> tuple[str, list[str]]:
    """:func:`check_repository` of the time steps ``times``: strictly increasing, and each
    period of ``checked`` (of the periods ``held``) with a step among them."""
    import numpy as np

    reasons: list[str] = []
    if times.size > 1 and not bool(np.all(times[1:] > times[:-1])):
        reasons.append("time steps are not strictly increasing")
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    present = {
        period_id(p, template.period)
        for p in pd.PeriodIndex(pd.DatetimeIndex(times), freq=_freq(template))
    }
    missing = [p for p in checked if p not in present]
    if missing:
        reasons.append(f"committed periods with no time step: {missing[:10]}")
    if len(set(held)) != len(held):
        reasons.append("a period was committed twice")
    return ("fail" if reasons else "pass"), reasons


def _appended_steps(
    product: Product, head: str, before: int, root: Opened | None = None
) -> Appended | None:
    """The time steps of snapshot ``head`` from the last of the ``before`` steps a record
    described on (see :class:`~arcodex.ingest._record.Appended`), read through zarr
    (``root``: the session that committed ``head``, read-only at it now); None when the
    time axis is not one that had ``before`` steps and grew."""
    import xarray as xr
    import zarr

    array: Any
    if root is not None and str(root.session.snapshot_id) == head:
        group, array = root.group, root.arrays.get("time")
    else:
        session = product.repository().readonly_session(snapshot_id=head)
        group = zarr.open_group(session.store, path=product.group or "", mode="r")
        try:
            array = group["time"]
        except KeyError:
            return None
    if not isinstance(array, zarr.Array) or len(array.shape) != 1 or array.shape[0] <= before:
        return None
    attrs: dict[str, Any] = dict(array.attrs)
    if "_FillValue" in attrs:
        try:
            from xarray.backends.zarr import FillValueCoder

            attrs["_FillValue"] = FillValueCoder.decode(attrs["_FillValue"], array.dtype)
        except (ImportError, TypeError, ValueError):
            return None
    raw = array[max(before - 1, 0) :]
    decoded = xr.decode_cf(xr.Dataset(coords={"time": ("time", raw, attrs)}))["time"].values
    # As xarray reads them (it leaves out netCDF's own).
    found = {k: v for k, v in group.attrs.items() if not k.lower().startswith("_nc")}
    return Appended(int(array.shape[0]), raw, decoded, attrs, found)


# -- helpers -------------------------------------------------------------------------------


def shortfall(result: IngestionResult, shown: int = 10) -> str:
    """The error of an ingestion some periods of which failed: each with the first line
    of its reason, what was kept, and what to do next."""
    failed = result.failed
    lines = [f"{f.period}: {(f.message.strip().splitlines() or [''])[0]}" for f in failed[:shown]]
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    kept = len(result.done) + len(result.skipped)
    return (
        f"{len(failed)} period(s) failed ({'; '.join(lines)}{more}); the {kept} committed "
        "are kept: run the ingestion again to fetch the failed ones"
    )


def _checked_before(
    current: Record | None, held: list[str], template: Template
) -> tuple[int, int] | None:
    """``(periods, steps)`` of the record's dataset when it passed its check and every
    period committed since lies after its last (an append), else None (check it all)."""
    if current is None:
        return None
    convert = current.metadata.get("convert") or {}
    listed = [str(p) for p in (current.metadata.get(INGEST_KEY) or {}).get("periods") or []]
    steps = convert.get("steps")
    if convert.get("check") != "pass" or not listed or not isinstance(steps, int):
        return None
    if held[: len(listed)] != listed:
        return None
    last = parse_period(listed[-1], template.period)
    if any(parse_period(p, template.period) <= last for p in held[len(listed) :]):
        return None
    return len(listed), steps


def _freq(template: Template) -> str:
    from arcodex.ingest._periods import FREQUENCIES

    return FREQUENCIES[template.period]


def _provider_of(template: Template, catalog: Catalog) -> Provider:
    from arcodex.ingest._registry import get_provider

    found: Provider = get_provider(template.provider.name, catalog)
    return found


def _describes(record: Record, ids: dict[str, Any]) -> bool:
    """Whether ``record`` already lists every period of ``ids`` (a run killed after its
    last commit left the repository ahead of its record)."""
    listed = (record.metadata.get(INGEST_KEY) or {}).get("periods") or []
    return set(ids) <= set(map(str, listed))


def _current(catalog: Catalog, rid: str) -> Record | None:
    try:
        record = catalog.backend.get(rid)
    except NotFoundError:
        return None
    return None if record.status == "deleted" else record


def _destination(
    catalog: Catalog,
    template: Template,
    extent: Extent,
    current: Record | None,
    overwrite: bool,
    uow: UnitOfWork,
) -> tuple[Product, Placed | None]:
    """The repository to write: the record's, or (new, or rebuilt beside it) a placed one."""
    from arcodex.convert._place import place
    from arcodex.convert._product import Product

    if current is not None and not overwrite:
        return _product_of(catalog, current), None
    suffix = f"-{uow.operation.id}" if current is not None else ""
    target = template.target
    name = f"{extent.id}{suffix}.icechunk"
    if target.dest:
        dest = target.dest.format(template=template.id, extent=extent.id)
        dest = (
            dest[: -len(".icechunk")] + suffix + ".icechunk"
            if dest.endswith(".icechunk")
            else f"{dest.rstrip('/')}/{name}"
        )
        placed = place(catalog, "icechunk", dest, None, None, None, [], target.profile)
    else:
        placed = place(
            catalog, "icechunk", None, None, target.profile, f"ingest/{template.id}/{name}", []
        )
    product = Product("icechunk", placed.target)
    if suffix:
        # A rebuild that does not finish is removed; the old dataset was never touched.
        uow.on_rollback(
            "remove the unfinished rebuild", lambda: _remove(product), url=product.target.url
        )
        # Journaled too, so that ``recover`` removes it after a kill (it is arcodex's own).
        uow.mark("artifact_written", url=product.target.url, profile=None)
    return product, placed


def _product_of(catalog: Catalog, record: Record) -> Product:
    """The repository a dataset record points at."""
    from arcodex.convert._access import source_options
    from arcodex.convert._locate import resolve_product

    options = source_options(catalog, None, None)
    return resolve_product(record.id, catalog, None, options, None, "main")


def _head(product: Product) -> str:
    return str(product.repository().lookup_branch(product.branch))


def _save_progress(
    catalog: Catalog,
    uow: UnitOfWork,
    done: int,
    total: int,
    current: str | None,
    failed: list[PeriodFailure],
) -> None:
    """The operation as it runs (status running): periods done of total, the one being
    fetched, the errors so far, for ``GET /ingestions/{id}`` and ``arcodex operations``."""
    uow.operation.parameters["progress"] = {
        "periods_done": done,
        "periods_total": total,
        "current_period": current,
        "errors": [f.to_dict() for f in failed],
    }
    catalog.backend.save_operation(uow.operation)


def _remove(product: Product) -> None:
    fs, path = product.target.fs()
    if fs.exists(path):
        fs.rm(path, recursive=True)
