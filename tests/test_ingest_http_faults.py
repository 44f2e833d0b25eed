"""An ingestion over HTTP end to end (issue 16): a loopback server with deliberate faults,
the ingestion that reports them and commits the rest, the resume that completes it, and
a backfill killed with SIGKILL then resumed, counting every request the server gets.

The server is the providers' test site (``Faulty``), serving the generated days of
``test_ingestion`` as NetCDF files; the template and extent are YAML files of the catalog.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from arcodex.catalog import Catalog
from arcodex.convert import open_product
from arcodex.ingest import committed_periods, get_extent, get_template, ingest, parse_period
from test_ingest_providers import HTTP_TIMEOUT, RETRIES, Faulty
from test_ingestion import _held, concatenated, source

DAYS = [f"2020-01-0{d}" for d in range(1, 9)]
#: The days the faulty site gets wrong, and what each failure must say.
TIMEOUT, TRUNCATED, HTML = DAYS[2], DAYS[4], DAYS[5]
REASONS = {TIMEOUT: "timed out", TRUNCATED: "truncated", HTML: "is an HTML page"}


def name(day: str) -> str:
    return f"tas_{day}.nc"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Faulty]:
    """The days as NetCDF files on a loopback server, with no fault until a test sets one."""
    from arcodex.testing import http_server

    directory = tmp_path / "site"
    directory.mkdir()
    for day in DAYS:
        source(parse_period(day, "daily")).to_netcdf(directory / name(day))
    faulty = Faulty(directory, faults={})
    try:
        with http_server(faulty.handler()) as url:
            faulty.url = url  # type: ignore[attr-defined]
            yield faulty
    finally:
        faulty.release.set()


@pytest.fixture
def catalog(tmp_path: Path, site: Any) -> Iterator[Catalog]:
    """A catalog whose templates ingest the site: ``tas-http`` with short timeouts,
    ``tas-slow`` with a long one (a stalled download waits rather than fails)."""
    with Catalog.create(tmp_path / "cat") as cat:
        root = Path(cat.root)
        (root / "templates").mkdir()
        for tid, timeout in (("tas-http", HTTP_TIMEOUT), ("tas-slow", 60)):
            (root / "templates" / f"{tid}.yaml").write_text(
                textwrap.dedent(f"""
                    id: {tid}
                    name: Temperature over HTTP
                    period: daily
                    provider:
                      name: http
                      params:
                        url: "{site.url}/tas_{{period}}.nc"
                        timeout: {timeout}
                        retries: {RETRIES}
                        backoff: 0.05
                    target: {{chunks: {{time: 4}}}}
                """),
                encoding="utf-8",
            )
        (root / "extents").mkdir()
        (root / "extents" / "box.yaml").write_text(
            "id: box\nbbox: [0, 40, 3, 42]\n", encoding="utf-8"
        )
        yield cat


def run(cat: Catalog, template: str, **options: Any) -> Any:
    return ingest(
        cat, get_template(cat, template), get_extent(cat, "box"), DAYS[0], DAYS[-1], **options
    )


def touched(site: Faulty, before: collections.Counter[tuple[str, str]]) -> dict[str, set[str]]:
    """The files the site was asked for since ``before``, by method."""
    found: dict[str, set[str]] = {}
    for method, path in site.requests - before:
        found.setdefault(method, set()).add(path)
    return found


def test_faults_are_reported_the_rest_committed_and_a_resume_completes(
    catalog: Catalog, site: Faulty
) -> None:
    from arcodex.catalog._access import is_published

    site.faults = {TIMEOUT: "timeout", TRUNCATED: "truncated", HTML: "html"}
    result = run(catalog, "tas-http", publish=True)
    good = [d for d in DAYS if d not in REASONS]
    assert result.done == good
    assert sorted(f.period for f in result.failed) == sorted(REASONS)
    for failure in result.failed:
        assert f"period {failure.period} " in failure.message
        assert name(failure.period) in failure.message
        assert REASONS[failure.period] in failure.message, failure.message
    assert not result.ok and not result.published
    assert any("not published" in r for r in result.reasons), result.reasons
    record = catalog.get(result.record_id)
    assert not is_published(record)
    assert record.metadata["ingest"]["periods"] == good
    [operation] = [o for o in catalog.operations(limit=50) if o.action == "ingest"]
    # The operation registered what was committed; its errors name the holes.
    assert sorted(e["period"] for e in operation.parameters["progress"]["errors"]) == sorted(
        REASONS
    )
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(good))

    site.faults = {}
    before = collections.Counter(site.requests)
    again = run(catalog, "tas-http", publish=True)
    assert sorted(again.done) == sorted(REASONS) and not again.failed
    assert again.ok and again.published and again.check == "pass"
    assert is_published(catalog.get(result.record_id))
    assert committed_periods_of(catalog, result.record_id) == good + again.done
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))
    # The resume asked for the failed periods only: nothing of a committed one, not a HEAD.
    asked = touched(site, before)
    assert set().union(*asked.values()) == {name(d) for d in REASONS}, asked
    assert all(site.requests[("GET", name(d))] - before[("GET", name(d))] == 1 for d in REASONS)


def committed_periods_of(cat: Catalog, rid: str) -> list[str]:
    from arcodex.convert._locate import resolve_product

    return committed_periods(resolve_product(rid, cat, None, {}, None, "main").repository())


def test_kill_mid_backfill_then_resume_downloads_only_the_missing(
    catalog: Catalog, site: Faulty
) -> None:
    from arcodex.convert._place import place

    repo = Path(
        place(catalog, "icechunk", None, None, None, "ingest/tas-slow/box.icechunk", []).target.url
    )
    # Two periods a commit (four steps a chunk): the child commits days 1-4, fetches day 5
    # into its next batch and waits on day 6, which the site holds back; there it is killed.
    site.faults = {DAYS[5]: "stall"}
    argv = [sys.executable, "-m", "arcodex", "--catalog", str(catalog.root), "ingest",
            "tas-slow", "--extent", "box", "--start", DAYS[0], "--end", DAYS[-1], "--json"]  # fmt: skip
    child = subprocess.Popen(
        argv, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            site.requests[("GET", name(DAYS[5]))] and _held(repo) == DAYS[:4]
        ):
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.05)
        assert _held(repo) == DAYS[:4], "the child did not reach day 6 before the deadline"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        if child.stderr:
            child.stderr.close()
    assert site.requests[("GET", name(DAYS[4]))] == 1  # fetched, never committed
    site.faults = {}
    site.release.set()

    [recovered] = [r for r in catalog.recover() if r.action == "ingest"]
    assert not recovered.removed and _held(repo) == DAYS[:4]
    before = collections.Counter(site.requests)
    result = run(catalog, "tas-slow")
    assert result.done == DAYS[4:] and not result.failed and result.check == "pass"
    asked = touched(site, before)
    assert set().union(*asked.values()) == {name(d) for d in DAYS[4:]}, asked
    assert all(site.requests[("GET", name(d))] - before[("GET", name(d))] == 1 for d in DAYS[4:])
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))
    assert catalog.doctor().clean
    doctor = subprocess.run(
        [sys.executable, "-m", "arcodex", "--catalog", str(catalog.root), "doctor", "--json"],
        env=os.environ.copy(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
