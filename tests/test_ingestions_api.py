"""``/ingestions`` and ``/sync`` over a live server (issue 16, parts 3 and 4): the job
lifecycle (202, status, cancel), who may start, see and cancel a job, and answers that
name no path.

The templates are YAML in the catalog's ``templates/`` directory, their periods daily
NetCDF files read by the ``files`` provider; each job runs in a process of its own
(``arcodex.server._ingestion_job``), which the fixture kills if a test leaves one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from arcodex.catalog import Catalog
from arcodex.testing import serve_catalog

pytest.importorskip("uvicorn")
pytest.importorskip("icechunk")

DAYS = [d.strftime("%Y-%m-%d") for d in pd.date_range("2020-01-01", periods=40, freq="D")]
USERS = {"w": "writer", "w2": "writer", "r": "reader", "a": "admin"}

TEMPLATES = """\
- id: tas-daily
  name: Generated temperature
  period: daily
  variables:
    tas: {units: K}
  provider:
    name: files
    params: {path: archive, pattern: "tas_{period}.nc"}
  target:
    chunks: {time: 4}
- id: tas-bad
  name: Generated temperature with a broken day
  period: daily
  provider:
    name: files
    params: {path: broken, pattern: "tas_{period}.nc"}
"""
EXTENTS = """\
- {id: box, name: A box, bbox: [0, 40, 3, 42]}
- {id: other, name: The same box again, bbox: [0, 40, 3, 42]}
- {id: third, name: And again, bbox: [0, 40, 3, 42]}
"""


def _day(day: str) -> xr.Dataset:
    times = pd.date_range(day, periods=2, freq="12h")
    lat, lon = np.array([40.5, 41.5]), np.array([0.5, 1.5, 2.5])
    tas = np.full((2, 2, 3), 270.0 + DAYS.index(day), "float32")
    return xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas, {"units": "K"})},
        coords={
            "time": times,
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )


def _kill_jobs(root: Path) -> None:
    """End every job process of the catalog that still runs (a test that failed midway)."""
    from arcodex.server._ingestion_job import jobs

    with Catalog.open(root) as cat:
        pids = [job.parameters.get("job", {}).get("pid") for job in jobs(cat)]
    for pid in pids:
        if isinstance(pid, int):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ingestions")
    root = base / "cat"
    tokens: dict[str, str] = {}
    with Catalog.create(root) as cat:
        (root / "archive").mkdir()
        for day in DAYS:
            _day(day).to_netcdf(root / "archive" / f"tas_{day}.nc")
        (root / "broken").mkdir()
        for day in DAYS[:3]:
            _day(day).to_netcdf(root / "broken" / f"tas_{day}.nc")
        (root / "broken" / f"tas_{DAYS[1]}.nc").write_bytes(b"<html>502 Bad Gateway</html>")
        (root / "templates").mkdir()
        (root / "templates" / "tas.yaml").write_text(TEMPLATES, encoding="utf-8")
        (root / "extents").mkdir()
        (root / "extents" / "boxes.yaml").write_text(EXTENTS, encoding="utf-8")
        for name, role in USERS.items():
            cat.users.add(name, role, [])
            tokens[name] = cat.users.create_token(name)[1]
    answers: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        answers.append(response)

    try:
        with serve_catalog(root) as url:
            clients = {
                who: httpx.Client(
                    base_url=url,
                    headers={"Authorization": f"Bearer {tokens[who]}"} if who else {},
                    timeout=30,
                    event_hooks={"response": [keep]},
                )
                for who in [*USERS, None]
            }
            yield {"root": root, "base": base, "url": url, "http": clients, "answers": answers}
            for client in clients.values():
                client.close()
    finally:
        _kill_jobs(root)


def _wait(client: httpx.Client, job: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/ingestions/{job}").json()
        if body["status"] in ("done", "failed", "cancelled", "interrupted"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _start(client: httpx.Client, **fields: Any) -> str:
    body = {"template": "tas-daily", "extent": "box", "start": DAYS[0], "end": DAYS[3], **fields}
    answer = client.post("/ingestions", json=body)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert set(accepted) == {"id", "status", "links"} and accepted["status"] == "queued"
    assert accepted["links"][0]["href"].endswith(f"/ingestions/{accepted['id']}")
    return str(accepted["id"])


def test_an_ingestion_runs_as_a_job_and_makes_its_dataset(world: dict[str, Any]) -> None:
    from arcodex.convert import open_product

    http = world["http"]
    job = _start(http["w"], publish=True)
    body = _wait(http["w"], job)
    assert body["status"] == "done", body
    assert body["kind"] == "ingest" and body["user"] == "w"
    assert body["progress"] == {
        "periods_done": 4,
        "periods_total": 4,
        "current_period": None,
        "errors": [],
    }
    assert body["dataset"] == "tas-daily+box"
    assert body["result"]["done"] == DAYS[:4]
    assert any(link["href"].endswith("/datasets/tas-daily+box") for link in body["links"])
    # Published: the dataset is listed to everyone, and it opens.
    assert http[None].get("/datasets/tas-daily+box").status_code == 200
    with Catalog.open(world["root"]) as cat:
        with open_product("tas-daily+box", catalog=cat) as ds:
            assert [str(t)[:10] for t in ds["time"].values[::2]] == DAYS[:4]
            assert float(ds["tas"].isel(time=-1).max()) == 273.0
        # The ingest operation records the user who asked, not the server's login.
        [ingest] = [op for op in cat.operations(limit=100) if op.action == "ingest"]
        assert ingest.user == "w"


def test_only_writers_start_ingestions(world: dict[str, Any]) -> None:
    http = world["http"]
    body = {"template": "tas-daily", "extent": "box", "start": DAYS[0], "end": DAYS[1]}
    assert http[None].post("/ingestions", json=body).status_code == 401
    assert http[None].post("/ingestions", json={"no": "body"}).status_code == 401
    assert http["r"].post("/ingestions", json=body).status_code == 403
    unknown = http["w"].post("/ingestions", json={**body, "template": "nope"})
    assert unknown.status_code == 404 and "no template 'nope'" in unknown.json()["description"]
    assert http["w"].post("/ingestions", json={**body, "extent": "nope"}).status_code == 404
    bad = http["w"].post("/ingestions", json={**body, "start": "not a day"})
    assert bad.status_code == 400, bad.text
    assert http["w"].post("/ingestions", json={**body, "colour": "red"}).status_code == 400
    with Catalog.open(world["root"]) as cat:  # none of these left a job behind
        from arcodex.server._ingestion_job import jobs

        assert all(job.user == "w" for job in jobs(cat))


def test_delete_cancels_after_the_current_period_and_keeps_what_was_committed(
    world: dict[str, Any],
) -> None:
    http = world["http"]
    job = _start(http["w"], extent="other", end=DAYS[-1])
    deadline = time.monotonic() + 60
    while True:
        body = http["w"].get(f"/ingestions/{job}").json()
        if body["status"] == "running" and body["progress"]["periods_done"] >= 2:
            break
        assert body["status"] in ("queued", "running"), body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)
    # The job's process is of a session of its own: it outlives the server that started it.
    from arcodex.server._ingestion_job import find_job

    with Catalog.open(world["root"]) as cat:
        running = find_job(cat, job)
        assert running is not None
        pid = running.parameters["job"]["pid"]
    with contextlib.suppress(ProcessLookupError):
        assert os.getsid(pid) == pid != os.getsid(0)
    # Another writer neither sees nor cancels it; a reader may not cancel at all.
    assert http["w2"].get(f"/ingestions/{job}").status_code == 404
    assert http["w2"].delete(f"/ingestions/{job}").status_code == 404
    assert http["r"].delete(f"/ingestions/{job}").status_code == 403
    assert http[None].delete(f"/ingestions/{job}").status_code == 401
    cancel = http["w"].delete(f"/ingestions/{job}")
    assert cancel.status_code == 202, cancel.text
    body = _wait(http["w"], job)
    assert body["status"] == "cancelled", body
    done, pending = body["result"]["done"], body["result"]["pending"]
    assert len(done) >= 2 and pending and done + pending == DAYS
    assert body["progress"]["periods_done"] == len(done)
    assert body["progress"]["periods_total"] == len(DAYS)
    assert http["w"].delete(f"/ingestions/{job}").status_code == 409
    # What was committed stays: the dataset holds those periods.
    from arcodex.ingest import committed_periods
    from arcodex.ingest._ingestion import _product_of

    with Catalog.open(world["root"]) as cat:
        product = _product_of(cat, cat.get("tas-daily+other"))
        assert committed_periods(product.repository()) == done


@pytest.fixture(scope="module")
def third(world: dict[str, Any]) -> dict[str, Any]:
    """A published ingestion by the other writer, w2 (listed, then synced)."""
    http = world["http"]
    job = _wait(http["w2"], _start(http["w2"], extent="third", end=DAYS[1], publish=True))
    assert job["status"] == "done", job
    return job


def test_listing_and_who_sees_which_job(world: dict[str, Any], third: dict[str, Any]) -> None:
    http = world["http"]
    job = third["id"]
    # A job of w's of its own (under xdist the tests that start one may run elsewhere).
    own = _start(http["w"], end=DAYS[0])
    assert _wait(http["w"], own)["status"] == "done"
    mine = http["w"].get("/ingestions").json()
    assert mine["kind"] == "ingestions"
    assert mine["items"] and all(item["user"] == "w" for item in mine["items"])
    assert job not in {item["id"] for item in mine["items"]}
    everyone = http["a"].get("/ingestions", params={"limit": 100}).json()["items"]
    assert {item["user"] for item in everyone} == {"w", "w2"}
    created = [item["created_at"] for item in everyone]
    assert created == sorted(created, reverse=True)  # newest first
    assert everyone[0]["id"] == own and job in {item["id"] for item in everyone}
    assert http["r"].get("/ingestions").json()["items"] == []
    assert http[None].get("/ingestions").json()["items"] == []
    assert http[None].get(f"/ingestions/{job}").status_code == 404
    assert http["a"].get(f"/ingestions/{job}").status_code == 200
    # Pages of one, followed, hold each of the admin's jobs once.
    seen: list[str] = []
    page = http["a"].get("/ingestions", params={"limit": 1}).json()
    while True:
        seen += [item["id"] for item in page["items"]]
        if not page["next"]:
            break
        page = http["a"].get("/ingestions", params={"limit": 1, "token": page["next"]}).json()
    assert seen == [item["id"] for item in everyone]
    assert http["a"].get("/ingestions", params={"token": "x"}).status_code == 400


def test_a_broken_period_is_reported_without_its_path(world: dict[str, Any]) -> None:
    http = world["http"]
    job = _start(http["w"], template="tas-bad", end=DAYS[2])
    body = _wait(http["w"], job)
    assert body["status"] == "failed", body
    [error] = body["progress"]["errors"]
    assert error["period"] == DAYS[1]
    assert f"tas_{DAYS[1]}.nc" in error["message"] or DAYS[1] in error["message"]
    assert body["result"]["done"] == [DAYS[0], DAYS[2]]
    assert body["dataset"] == "tas-bad+box"
    # The job says why it did not complete, as its ingest operation does.
    assert body["error"] and f"1 period(s) failed ({DAYS[1]}: " in body["error"], body
    with Catalog.open(world["root"]) as cat:
        [ingest] = [o for o in cat.operations(limit=100) if o.id == body["result"]["operation"]]
        assert ingest.status == "failed" and ingest.error is not None
        assert ingest.error.type == "Incomplete" and DAYS[1] in ingest.error.message


def test_sync_plan_and_run(world: dict[str, Any], third: dict[str, Any]) -> None:
    pytest.importorskip("arcodex.ingest._sync")
    http = world["http"]
    rid = third["dataset"]
    plan = http["r"].get(f"/sync/{rid}/plan", params={"end": DAYS[4]})
    assert plan.status_code == 200, plan.text
    assert plan.json()["action"] == "append"
    assert http[None].post(f"/sync/{rid}", params={"end": DAYS[4]}).status_code == 401
    assert http["r"].post(f"/sync/{rid}", params={"end": DAYS[4]}).status_code == 403
    assert http["w"].get("/sync/no-such-dataset/plan").status_code == 404
    started = http["w"].post(f"/sync/{rid}", params={"end": DAYS[4]})
    assert started.status_code == 202, started.text
    synced = _wait(http["w"], started.json()["id"])
    assert synced["status"] == "done" and synced["kind"] == "sync", synced
    assert synced["dataset"] == rid
    again = http["w"].post(f"/sync/{rid}", params={"end": DAYS[4]})
    assert again.status_code == 200 and again.json()["action"] == "up_to_date", again.text


def test_no_answer_names_a_path(world: dict[str, Any]) -> None:
    """Run last: every answer this module got, checked for the catalog's paths."""
    answers: list[httpx.Response] = world["answers"]
    assert len(answers) > 20
    for where in (str(world["base"]), str(Path(world["root"]).resolve()), "state/jobs"):
        for answer in answers:
            assert where not in answer.text, (answer.request.url, answer.text)
