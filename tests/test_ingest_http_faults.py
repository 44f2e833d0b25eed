"""An ingestion over HTTP end to end (issue 16): a loopback server with deliberate faults,
the ingestion that reports them and commits the rest, the resume that completes it, and
a backfill killed with SIGKILL then resumed, counting every request the server gets.

The server is the providers' test site (``Faulty``), serving the generated days of
``test_ingestion`` as NetCDF files; the template and extent are YAML files of the catalog.
"""

from __future__ import annotations

import collections
import contextlib
import json
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
    # It did not complete, and says so: failed, each hole with its one-line reason; the
    # event log says the same.
    assert operation.status == "failed" and operation.error is not None
    assert operation.error.type == "Incomplete"
    for day, reason in REASONS.items():
        assert f"{day}: " in operation.error.message and reason in operation.error.message
    assert "run the ingestion again" in operation.error.message
    assert "\n" not in operation.error.message
    [ended] = catalog.logs(operation=operation.id, event="operation.*")[-1:]
    assert ended["event"] == "operation.failed" and ended["level"] == "warning", ended
    assert operation.id in {o["id"] for o in catalog.info().recent_failed_operations}
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(good))

    site.faults = {}
    before = collections.Counter(site.requests)
    again = run(catalog, "tas-http", publish=True)
    assert sorted(again.done) == sorted(REASONS) and not again.failed
    assert again.ok and again.published and again.check == "pass"
    assert is_published(catalog.get(result.record_id))
    [resumed] = [o for o in catalog.operations(limit=50) if o.id == again.operation_id]
    assert resumed.status == "succeeded" and resumed.error is None
    assert committed_periods_of(catalog, result.record_id) == good + again.done
    with open_product(result.record_id, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))
    # The resume asked for the failed periods only: nothing of a committed one, not a HEAD.
    asked = touched(site, before)
    assert set().union(*asked.values()) == {name(d) for d in REASONS}, asked
    assert all(site.requests[("GET", name(d))] - before[("GET", name(d))] == 1 for d in REASONS)


def arcodex(cat: Catalog, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "arcodex", "--catalog", str(cat.root), *args]
    return subprocess.run(argv, env=os.environ.copy(), capture_output=True, text=True, timeout=120)


def test_the_cli_exits_non_zero_naming_each_failed_period_and_a_rerun_completes(
    catalog: Catalog, site: Faulty
) -> None:
    site.faults = {TIMEOUT: "timeout", HTML: "html"}
    argv = ["ingest", "tas-http", "--extent", "box", "--start", DAYS[0], "--end", DAYS[-1]]
    first = arcodex(catalog, *argv)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert "6 periods committed" in first.stdout and "2 failed" in first.stdout, first.stdout
    for day in (TIMEOUT, HTML):
        [line] = [x for x in first.stderr.splitlines() if x.startswith(f"failed: {day}: ")]
        assert REASONS[day] in line
    assert "run the same command again" in first.stderr
    [operation] = [o for o in catalog.operations(limit=50) if o.action == "ingest"]
    assert operation.status == "failed" and operation.error is not None
    # Nothing is broken (what was committed is consistent): doctor has nothing to repair.
    doctor = arcodex(catalog, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    site.faults = {}
    again = arcodex(catalog, *argv, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(json.loads(again.stdout)["done"]) == [TIMEOUT, HTML]


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

    # Not running forever: doctor sees its process gone, and says what to do.
    doctor = arcodex(catalog, "doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    said = " ".join(doctor.stdout.split())  # the console wraps long lines
    assert "incomplete operation" in said and "(ingest, interrupted after period_committed" in said
    assert "run `arcodex recover`" in said and "its 4 committed periods are kept" in said, said
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


def _job_status(http: Any, job: str) -> dict[str, Any]:
    answer = http.get(f"/ingestions/{job}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_job_killed_mid_backfill_is_interrupted_and_a_new_one_resumes_it(
    catalog: Catalog, site: Faulty
) -> None:
    """``POST /ingestions``'s job process SIGKILLed: the job is reported interrupted (not
    running forever), and the same request again downloads only the missing periods."""
    pytest.importorskip("uvicorn")
    import httpx

    from arcodex.convert._place import place
    from arcodex.server._ingestion_job import find_job, state_of
    from arcodex.testing import serve_catalog

    catalog.users.add("w", "writer", [])
    token = catalog.users.create_token("w")[1]
    repo = Path(
        place(catalog, "icechunk", None, None, None, "ingest/tas-slow/box.icechunk", []).target.url
    )
    site.faults = {DAYS[5]: "stall"}
    body = {"template": "tas-slow", "extent": "box", "start": DAYS[0], "end": DAYS[-1]}
    pid: int | None = None
    with (
        serve_catalog(catalog.root) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http,
    ):
        try:
            answer = http.post("/ingestions", json=body)
            assert answer.status_code == 202, answer.text
            job = answer.json()["id"]
            deadline = time.monotonic() + 60
            while not (site.requests[("GET", name(DAYS[5]))] and _held(repo) == DAYS[:4]):
                status = _job_status(http, job)
                assert status["status"] in ("queued", "running"), status
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            assert _job_status(http, job)["status"] == "running"
            found = find_job(catalog, job)
            assert found is not None
            pid = int(found.parameters["job"]["pid"])
            # The job as a server of another host reads it: its pid says nothing there.
            # Leases every host sees (PostgreSQL) tell; the pid and host of a SQLite
            # catalog's cannot, so such a job is taken to run.
            elsewhere = found.model_copy(deep=True)
            elsewhere.parameters["job"].update(host="another-host", pid=1)
            assert state_of(catalog, elsewhere)[0] == "running"
            os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while (status := _job_status(http, job))["status"] == "running":
                assert time.monotonic() < deadline, "a killed job still shows running"
                time.sleep(0.05)
            assert status["status"] == "interrupted", status
            shared = catalog.leases.shared
            assert state_of(catalog, elsewhere)[0] == ("interrupted" if shared else "running")
            assert "start the same ingest again to resume" in status["error"], status
            assert status["progress"]["periods_done"] >= 4
            # It has ended: nothing to cancel, and it no longer holds its dataset.
            assert http.delete(f"/ingestions/{job}").status_code == 409
            site.faults = {}
            site.release.set()
            before = collections.Counter(site.requests)
            again = http.post("/ingestions", json=body)
            assert again.status_code == 202, again.text
            rerun = again.json()["id"]
            deadline = time.monotonic() + 90
            while (status := _job_status(http, rerun))["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError, TypeError):
                os.killpg(pid, signal.SIGKILL)  # type: ignore[arg-type]
    assert status["status"] == "done", status
    assert status["result"]["done"] == DAYS[4:] and status["result"]["skipped"] == DAYS[:4]
    asked = touched(site, before)
    assert set().union(*asked.values()) == {name(d) for d in DAYS[4:]}, asked
    # The killed job stays interrupted; recover closes its ingest operation, keeping it all.
    assert _interrupted(catalog, job)
    catalog.recover()
    assert committed_periods_of(catalog, "tas-slow+box") == DAYS
    assert catalog.doctor().clean


def _interrupted(cat: Catalog, job: str) -> bool:
    from arcodex.server._ingestion_job import find_job, state_of

    found = find_job(cat, job)
    return found is not None and state_of(cat, found)[0] == "interrupted"


def test_a_sync_job_cancelled_midway_leaves_the_dataset_as_it_was(
    catalog: Catalog, site: Faulty
) -> None:
    """``DELETE`` of a ``POST /sync/{id}`` job that has committed periods: the job ends
    cancelled, and the dataset (its branch, record and published state) is as before."""
    pytest.importorskip("uvicorn")
    import httpx

    from arcodex.catalog._access import is_published
    from arcodex.convert._place import place
    from arcodex.ingest._sync import sync
    from arcodex.testing import serve_catalog

    template, box = get_template(catalog, "tas-slow"), get_extent(catalog, "box")
    first = ingest(catalog, template, box, DAYS[0], DAYS[1], publish=True)
    assert first.done == DAYS[:2] and first.published
    rid = first.record_id
    before = catalog.get(rid)
    repo = Path(
        place(catalog, "icechunk", None, None, None, "ingest/tas-slow/box.icechunk", []).target.url
    )
    assert _held(repo) == DAYS[:2]
    catalog.users.add("w", "writer", [])
    token = catalog.users.create_token("w")[1]
    # Days 3-4 are one commit; day 5 is fetched and day 6 held back: the job waits there.
    site.faults = {DAYS[5]: "stall"}
    headers = {"Authorization": f"Bearer {token}"}
    with (
        serve_catalog(catalog.root) as url,
        httpx.Client(base_url=url, headers=headers, timeout=30) as http,
    ):
        started = http.post(f"/sync/{rid}", params={"end": DAYS[-1]})
        assert started.status_code == 202, started.text
        job = started.json()["id"]
        deadline = time.monotonic() + 60
        while not (site.requests[("GET", name(DAYS[5]))] and _held(repo) == DAYS[:4]):
            status = _job_status(http, job)
            assert status["status"] in ("queued", "running"), status
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        cancel = http.delete(f"/ingestions/{job}")
        assert cancel.status_code == 202, cancel.text
        assert cancel.json()["cancel_requested"] is True
        site.release.set()
        deadline = time.monotonic() + 60
        while (status := _job_status(http, job))["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert status["status"] == "cancelled", status
        assert status["kind"] == "sync" and status["result"]["cancelled"] is True
        assert status["result"]["done"] == []
        assert http.delete(f"/ingestions/{job}").status_code == 409
    # Unchanged: the periods it had committed are taken back, the record is the same.
    assert _held(repo) == DAYS[:2]
    after = catalog.get(rid)
    assert after.version == before.version and after.metadata == before.metadata
    assert is_published(after)
    with open_product(rid, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS[:2]))
    # And a sync afterwards appends every period, as if the cancelled one never ran.
    site.faults = {}
    done = sync(catalog, rid, end=DAYS[-1])
    assert done.done == DAYS[2:] and done.ok, done
    with open_product(rid, catalog=catalog) as ds:
        xr.testing.assert_allclose(ds.load(), concatenated(DAYS))
    assert catalog.doctor().clean
