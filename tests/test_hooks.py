"""Hooks: order, structured results, required vs optional, rollback, logging."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcodex.catalog import Catalog, HookContext, HookError, HookResult
from arcodex.errors import ValidationError


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog.create(tmp_path / "cat")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "obs.csv"
    path.write_text("t,ch4\n1,1900\n")
    return path


def _files(cat: Catalog) -> list[Path]:
    store = cat.root / "store"
    return [p for p in store.rglob("*") if p.is_file()] if store.exists() else []


def test_hooks_add_metadata_in_a_fixed_order(cat: Catalog, src: Path) -> None:
    seen: list[str] = []

    def tag(label: str, **meta: object) -> object:
        def hook(ctx: HookContext) -> HookResult:
            seen.append(f"{ctx.point}:{label}")
            return HookResult(metadata=dict(meta))

        return hook

    cat.hooks.register("after_metadata_extract", tag("b", source="b", lab="x"), name="b")
    cat.hooks.register("after_metadata_extract", tag("a", source="a"), name="a")
    cat.hooks.register("after_metadata_extract", tag("first"), name="z", order=1)
    cat.hooks.register("before_record_commit", tag("commit", checked=True), name="c")
    for point in (
        "before_path_plan",
        "after_path_plan",
        "before_artifact_write",
        "after_artifact_write",
    ):
        cat.hooks.register(point, tag(point), name=point)
    rec = cat.add_file(src)
    assert cat.hooks.names("after_metadata_extract") == ["z", "a", "b"]
    assert rec.metadata["source"] == "b"  # later hooks win on a key
    assert rec.metadata["lab"] == "x"
    assert cat.get(rec.id).metadata["checked"] is True
    assert seen == [
        "after_metadata_extract:first",
        "after_metadata_extract:a",
        "after_metadata_extract:b",
        "before_path_plan:before_path_plan",
        "after_path_plan:after_path_plan",
        "before_artifact_write:before_artifact_write",
        "after_artifact_write:after_artifact_write",
        "before_record_commit:commit",
    ]
    runs = cat.logs(event="hook.run")
    assert [r["hook"] for r in runs][:3] == ["z", "a", "b"]


def test_adds_return_the_records_as_a_commit_hook_left_them(
    cat: Catalog, src: Path, tmp_path: Path
) -> None:
    """What an add returns is what it stored: a ``before_record_commit`` hook's metadata
    is in the returned record, for every way of adding (it was only in the stored one)."""
    from arcodex.model import Record

    cat.hooks.register(
        "before_record_commit", lambda ctx: HookResult(metadata={"pid": "x"}), name="pid"
    )
    other = tmp_path / "other.csv"
    other.write_text("t,ch4\n2,1901\n")
    added = [
        cat.add_file(src),
        cat.add_external("https://example.org/a.nc"),
        *cat.add_files([other]),
        *cat.add_records([Record(id="bulk")]),
        cat.add_bytes(b"notes", name="notes.txt"),
    ]
    for record in added:
        assert record.metadata.get("pid") == "x", record.id
        assert record == cat.get(record.id), record.id


def test_a_failing_required_hook_rolls_back(cat: Catalog, src: Path) -> None:
    calls: list[str] = []

    def refuse(ctx: HookContext) -> None:
        raise RuntimeError("site unknown to the registry")

    cat.hooks.register("after_record_commit", refuse, name="registry-check")
    cat.hooks.register("on_operation_error", lambda ctx: calls.append("error") or None, name="e")
    cat.hooks.register(
        "on_operation_rollback", lambda ctx: calls.append("rollback") or None, name="r"
    )
    with pytest.raises(HookError, match="registry-check failed at after_record_commit"):
        cat.add_file(src, record_id="new")
    assert cat.count() == 0
    assert _files(cat) == []
    assert calls == ["error", "rollback"]
    (failed,) = cat.logs(event="hook.failed")
    assert failed["level"] == "error" and failed["exc_type"] == "RuntimeError"


def test_an_optional_hook_only_warns(cat: Catalog) -> None:
    cat.hooks.register("before_record_commit", lambda ctx: 1 / 0, name="flaky", required=False)  # type: ignore[arg-type,return-value]
    cat.hooks.register(
        "before_record_commit", lambda ctx: HookResult(warnings=["odd title"]), name="lint"
    )
    rec = cat.add_external("https://example.org/a")
    assert cat.get(rec.id)
    (failed,) = cat.logs(event="hook.failed")
    assert failed["level"] == "warning"
    assert any(e["warnings"] == ["odd title"] for e in cat.logs(event="hook.run", level="warning"))


def test_a_hook_must_return_a_result(cat: Catalog) -> None:
    cat.hooks.register("before_record_commit", lambda ctx: {"not": "a result"}, name="bad")  # type: ignore[arg-type,return-value]
    with pytest.raises(HookError, match="not a HookResult"):
        cat.add_external("https://example.org/a")
    assert cat.count() == 0


def test_registration_errors(cat: Catalog) -> None:
    with pytest.raises(ValidationError, match="unknown hook point"):
        cat.hooks.register("after_lunch", lambda ctx: None)
    cat.hooks.register("after_record_commit", lambda ctx: None, name="once")
    with pytest.raises(ValidationError, match="already registered"):
        cat.hooks.register("after_record_commit", lambda ctx: None, name="once")


def test_hook_metadata_is_validated(cat: Catalog) -> None:
    cat.hooks.register(
        "before_record_commit", lambda ctx: HookResult(metadata={"bad.key": 1}), name="dotty"
    )
    with pytest.raises(ValidationError, match=r"before_record_commit hook gave"):
        cat.add_external("https://example.org/a")
    assert cat.count() == 0


def test_update_and_bytes_run_their_hooks(cat: Catalog) -> None:
    seen: list[str] = []

    def note(ctx: HookContext) -> HookResult:
        seen.append(ctx.point)
        return HookResult(metadata={"stamped": True} if ctx.point == "before_record_commit" else {})

    for point in ("after_record_validate", "before_record_commit", "after_record_commit",
                  "before_artifact_write", "after_artifact_write"):  # fmt: skip
        cat.hooks.register(point, note, name=f"note-{point}")
    rec = cat.add_bytes(b"x", name="n.txt")
    assert seen == [
        "after_record_validate",
        "before_artifact_write",
        "after_artifact_write",
        "before_record_commit",
        "after_record_commit",
    ]
    seen.clear()
    new = cat.update(rec.id, set={"q": 1})
    assert seen == ["after_record_validate", "before_record_commit", "after_record_commit"]
    assert new.metadata["stamped"] is True and cat.get(rec.id).metadata["q"] == 1


def test_storage_failures_are_logged(tmp_path: Path) -> None:
    from arcodex.catalog import CatalogConfig, FileProfileConfig

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store directory should be")
    cat = Catalog.create(
        tmp_path / "cat",
        config=CatalogConfig(profiles={"local": FileProfileConfig(root=str(blocked))}),
    )
    from arcodex.errors import StorageError

    with pytest.raises(StorageError, match="could not write"):
        cat.add_bytes(b"x", name="n.txt")
    (failed,) = cat.logs(event="operation.failed")
    assert failed["exc_type"] == "StorageError"
    assert cat.count() == 0
