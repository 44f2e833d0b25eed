"""Pipelines: steps in order, journaled and logged with timings, hooks around each step,
rollback on failure, dry runs, and pipelines found by name (built-in, arcodex.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcodex.catalog import (
    Catalog,
    HookContext,
    HookError,
    Pipeline,
    PipelineContext,
    Step,
    get_pipeline,
    get_step,
    open_unit,
    register_step,
    run_pipeline,
    step_registry,
)
from arcodex.errors import NotFoundError, ValidationError
from arcodex.model import Record


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog.create(tmp_path / "cat")


def _write(name: str) -> Step:
    """A changing step: opens the unit and writes one record, undoable."""

    def write(ctx: PipelineContext) -> None:
        uow = open_unit(ctx, "test-write")
        uow.transition("planned", records=[name])
        assert ctx.catalog is not None
        ctx.catalog._write_records(uow, [Record(id=name, kind="document", title=name)])
        ctx.state.setdefault("written", []).append(name)

    return Step(f"write-{name}", write, doc="write one record")


def _look(ctx: PipelineContext) -> None:
    ctx.state.setdefault("looked", 0)
    ctx.state["looked"] += 1


LOOK = Step("look", _look, changes=False, doc="change nothing")


def _fail(ctx: PipelineContext) -> None:
    raise ValidationError("step refuses")


def test_steps_run_in_order_journaled_and_logged_with_timings(cat: Catalog) -> None:
    pipe = Pipeline("demo", (LOOK, _write("r1"), _write("r2"), LOOK))
    assert pipe.names() == ["look", "write-r1", "write-r2", "look"]
    ctx = run_pipeline(pipe, PipelineContext(cat, {}, user="ana"))
    assert ctx.state == {"looked": 2, "written": ["r1", "r2"]}
    assert [name for name, _ in ctx.timings] == pipe.names()
    assert all(seconds >= 0 for _, seconds in ctx.timings)
    assert ctx.uow is None  # the unit is closed once the pipeline has run
    assert {r.id for r in cat.search().records} == {"r1", "r2"}

    [op] = [o for o in cat.operations() if o.action == "test-write"]
    assert op.status == "succeeded" and op.user == "ana"
    entries = cat.journal.read(op.id)
    steps = [(e["state"], e.get("step")) for e in entries if e["state"].startswith("step_")]
    # The first look ran before the unit was open: only its event says it ran.
    assert steps == [
        ("step_started", "write-r1"),
        ("step_finished", "write-r1"),
        ("step_started", "write-r2"),
        ("step_finished", "write-r2"),
        ("step_started", "look"),
        ("step_finished", "look"),
    ]
    assert entries[-1]["state"] == "committed"
    events = cat.logs(event="pipeline.step")
    assert [e["step"] for e in events] == pipe.names()
    assert all(isinstance(e["seconds"], float) for e in events)
    assert events[0]["operation_id"] is None and events[1]["operation_id"] == op.id


def test_a_failing_step_rolls_back_everything(cat: Catalog) -> None:
    pipe = Pipeline("demo", (_write("r1"), _write("r2"), Step("fail", _fail)))
    with pytest.raises(ValidationError, match="step refuses"):
        run_pipeline(pipe, PipelineContext(cat, {}))
    assert cat.search().records == []
    [op] = cat.operations()
    assert op.status == "failed"
    states = [e["state"] for e in cat.journal.read(op.id)]
    assert states[-2:] == ["rollback_started", "rolled_back"]
    assert "step_finished" in states and states.count("step_started") == 3


def test_hooks_run_before_and_after_each_step(cat: Catalog) -> None:
    seen: list[tuple[str, str | None, str | None]] = []

    def note(ctx: HookContext) -> None:
        seen.append((ctx.point, ctx.step, ctx.pipeline))

    cat.hooks.register("before_step", note, name="b")
    cat.hooks.register("after_step", note, name="a")
    run_pipeline(Pipeline("demo", (LOOK, _write("r1"))), PipelineContext(cat, {}))
    assert seen == [
        ("before_step", "look", "demo"),
        ("after_step", "look", "demo"),
        ("before_step", "write-r1", "demo"),
        ("after_step", "write-r1", "demo"),
    ]


def test_a_required_after_step_hook_failing_rolls_back(cat: Catalog) -> None:
    def refuse(ctx: HookContext) -> None:
        if ctx.step == "write-r2":
            raise RuntimeError("no")

    cat.hooks.register("after_step", refuse, name="gate")
    pipe = Pipeline("demo", (_write("r1"), _write("r2"), LOOK))
    with pytest.raises(HookError, match="gate failed at after_step"):
        run_pipeline(pipe, PipelineContext(cat, {}))
    assert cat.search().records == []
    assert [o.status for o in cat.operations()] == ["failed"]
    assert cat.journal.open_operations() == []


def test_dry_run_runs_only_the_steps_that_change_nothing(cat: Catalog) -> None:
    pipe = Pipeline("demo", (LOOK, _write("r1"), LOOK))
    ctx = run_pipeline(pipe, PipelineContext(cat, {}, dry_run=True))
    assert ctx.state == {"looked": 2}
    assert ctx.skipped == ["write-r1"]
    assert [name for name, _ in ctx.timings] == ["look", "look"]
    assert cat.search().records == [] and cat.operations() == []
    assert cat.logs() == []  # not even the steps' events


def test_open_unit_outside_a_run_is_refused(cat: Catalog) -> None:
    with pytest.raises(Exception, match="run_pipeline"):
        open_unit(PipelineContext(cat, {}), "x")


def test_need_names_the_step_that_makes_a_value(cat: Catalog) -> None:
    def needs(ctx: PipelineContext) -> None:
        ctx.need("records", "validate-record")

    with pytest.raises(ValidationError, match="put validate-record before it"):
        run_pipeline(Pipeline("demo", (Step("needs", needs),)), PipelineContext(cat, {}))


def test_declared_pipelines_are_built_from_registered_steps() -> None:
    register_step(LOOK)
    assert step_registry()["look"] is LOOK
    pipe = get_pipeline("twice", {"twice": ["look", "look"]})
    assert pipe.origin == "config"
    assert pipe.names() == ["look", "look"]
    assert get_step("look").changes is False


def test_an_unknown_step_or_pipeline_is_refused_in_one_line() -> None:
    register_step(LOOK)
    with pytest.raises(ValidationError) as err:
        get_pipeline("mine", {"mine": ["look", "teleport"]})
    message = str(err.value)
    assert "'teleport'" in message and "look" in message and "\n" not in message
    with pytest.raises(NotFoundError, match="no pipeline 'nope'"):
        get_pipeline("nope")
    with pytest.raises(NotFoundError, match="no pipeline step 'nope'; known steps: "):
        get_step("nope")
