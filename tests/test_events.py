"""The catalog's event log: what is written, how it is queried, what it never holds."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcodex.catalog import Catalog
from arcodex.catalog._events import EventLog
from arcodex.cli import app
from arcodex.errors import ConflictError, ValidationError


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog.create(tmp_path / "cat")


def test_operations_are_logged_with_who_and_what(cat: Catalog) -> None:
    rec = cat.add_external("https://example.org/a", user="alice")
    events = cat.logs(operation=cat.operations(limit=1)[0].id, event="operation.*")
    assert [e["event"] for e in events] == ["operation.started", "operation.succeeded"]
    steps = [e["event"] for e in cat.logs(operation=done_id(cat), event="uow.*")]
    assert steps == [
        "uow.started",
        "uow.planned",
        "uow.catalog_write_started",
        "uow.catalog_write_succeeded",
        "uow.hooks_started",
        "uow.committed",
    ]
    done = events[-1]
    assert done["record_id"] == rec.id
    assert done["user"] == "alice"
    assert done["level"] == "info"
    assert done["pid"] > 0 and done["host"] and done["session"]
    assert done["versions"]["arcodex"]
    assert done["timestamp"].endswith("Z")


def done_id(cat: Catalog) -> str:
    return cat.operations(limit=1)[0].id


def test_failures_carry_the_exception(cat: Catalog) -> None:
    cat.add_external("https://example.org/a", record_id="dup")
    with pytest.raises(ConflictError):
        cat.add_external("https://example.org/b", record_id="dup", user="bob")
    (failed,) = cat.logs(level="error", event="operation.*")
    assert failed["event"] == "operation.failed"
    assert failed["exc_type"] == "ConflictError"
    assert "already exists" in failed["exc_message"]
    assert "Traceback" in failed["traceback"]
    assert failed["user"] == "bob"


def test_refused_input_is_logged(cat: Catalog) -> None:
    with pytest.raises(ValidationError):
        cat.add_external("https://example.org/a", metadata={"bad.key": 1}, user="carol")
    (refused,) = cat.logs(event="validation.*")
    assert refused["level"] == "warning"
    assert refused["user"] == "carol"
    assert refused["exc_type"] == "ValidationError"
    assert cat.count() == 0


def test_filters(cat: Catalog) -> None:
    a = cat.add_external("https://example.org/a", user="alice")
    cat.add_external("https://example.org/b", user="bob")
    cat.update(a.id, set={"x": 1}, user="bob")
    assert {e["user"] for e in cat.logs(user="bob")} == {"bob"}
    assert {e["record_id"] for e in cat.logs(record=a.id[:10]) if e["record_id"]} == {a.id}
    assert len(cat.logs(event="operation.succeeded")) == 3
    assert len(cat.logs(event="operation.*")) == 6
    assert cat.logs(level="warning") == []
    assert len(cat.logs(limit=2)) == 2
    assert len(cat.logs(since="2000", until="2999", event="operation.*")) == 6
    assert cat.logs(until="2001-01") == []
    assert cat.logs(since="2999-01-01") == []
    with pytest.raises(ValidationError, match="unknown level"):
        cat.logs(level="loud")
    with pytest.raises(ValidationError, match="bad time"):
        cat.logs(since="yesterday")


def test_secrets_are_redacted(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "logs", secrets=["s3cr3t-value-123", "key"])
    log.emit(
        "storage.failed",
        "upload failed for key s3cr3t-value-123",
        error=RuntimeError("token s3cr3t-value-123"),
    )
    text = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.jsonl"))
    assert "s3cr3t-value-123" not in text
    assert "***" in text
    assert "for key" in text  # too short to be a secret: ordinary words are left alone


def _writer(directory: str, n: int, tag: str) -> None:
    log = EventLog(Path(directory))
    for i in range(n):
        log.emit("test.line", f"{tag}-{i}", padding="x" * 5000)


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), 100, f"p{k}")) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = [line for f in tmp_path.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(lines) == 400
    messages = {json.loads(line)["message"] for line in lines}
    assert len(messages) == 400


def test_cli_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCODEX_CATALOG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    root = tmp_path / "cat"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    assert (
        runner.invoke(app, ["-C", str(root), "add", "--external", "https://e.org/x"]).exit_code == 0
    )
    result = runner.invoke(app, ["-C", str(root), "logs", "--json", "--event", "operation.*"])
    assert result.exit_code == 0, result.stderr
    events = json.loads(result.stdout)
    assert [e["event"] for e in events] == ["operation.started", "operation.succeeded"]
    result = runner.invoke(app, ["-C", str(root), "logs"])
    assert result.exit_code == 0 and "operation.succeeded" in result.stdout
    bad = runner.invoke(app, ["-C", str(root), "logs", "--level", "loud"])
    assert bad.exit_code == 1
    assert bad.stderr.strip().startswith("error: unknown level")


def test_every_mutation_logs_start_and_end(cat: Catalog, tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text("x\n")
    rec = cat.add_file(src)
    cat.add_bytes(b"y", name="b.txt")
    cat.update(rec.id, set={"q": 1})
    cat.delete(rec.id)
    cat.restore(rec.id)
    cat.purge(rec.id)
    events = cat.logs(event="operation.*")
    actions = [(e["action"], e["event"].removeprefix("operation.")) for e in events]
    expected = [
        (action, phase)
        for action in ("add", "add", "update", "delete", "restore", "purge")
        for phase in ("started", "succeeded")
    ]
    assert actions == expected
