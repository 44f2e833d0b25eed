"""Operations as declared pipelines: named steps, run in order, each journaled and logged.

A :class:`Pipeline` is a name and a sequence of :class:`Step`\\ s. A step is a small
function of a :class:`PipelineContext`: it reads what earlier steps left in
``ctx.state`` and leaves what it made there for the later ones. :func:`run_pipeline`
runs the steps in order, and around each one

- runs the ``before_step`` and ``after_step`` hooks (their context names the step),
- journals ``step_started`` and ``step_finished`` in the unit of work, when one is
  open (neither is fsync'd: they ride along with the next durable state),
- logs a ``pipeline.step`` event with the step's time, and appends it to
  ``ctx.timings``.

A step that changes something opens the catalog's unit of work with
:func:`open_unit`; the later steps run inside it, and when any step fails the unit
rolls back everything done so far, exactly as an operation written as one
function does. Under ``dry_run`` only the steps that change nothing
(``changes=False``) run: the pipeline skips the others (``ctx.skipped``), and
``ctx.state`` holds what they would have acted on.

Steps and pipelines are found by name (:func:`get_step`, :func:`get_pipeline`):
the built-in ones (registered by the modules that define them, with
:func:`register_step` and :func:`register_pipeline`), the pipelines a catalog's
``arcodex.yaml`` declares under ``pipelines:``, and those plugins register.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arcodex.catalog._hooks import HookContext
from arcodex.errors import ArcodexError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from arcodex.catalog._journal import UnitOfWork
    from arcodex.catalog._writing import CatalogWriter
    from arcodex.plugins import Registry

__all__ = [
    "Pipeline",
    "PipelineContext",
    "Step",
    "get_pipeline",
    "get_step",
    "list_pipelines",
    "open_unit",
    "register_pipeline",
    "register_step",
    "run_pipeline",
    "step_registry",
]


@dataclass(frozen=True)
class Step:
    """One named step of an operation.

    Attributes:
        name: kebab-case (``extract-metadata``); log lines and journal entries carry it.
        fn: reads and writes ``ctx.state``.
        changes: False when the step changes nothing, so that it runs under ``--dry-run``.
        doc: one line saying what the step does.
        params: the parameters it reads (None: any).
        inputs: the parameter that a run's positional inputs fill.
    """

    name: str
    fn: Callable[[PipelineContext], None]
    changes: bool = True
    doc: str = ""
    #: The parameters the step reads (None: it does not say, so any is accepted).
    params: tuple[str, ...] | None = None
    #: The parameter a run's inputs fill (``arcodex run NAME FILE…``: ``paths``).
    inputs: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Name, whether it changes anything, and its doc line."""
        return {"name": self.name, "changes": self.changes, "doc": self.doc}


@dataclass
class Pipeline:
    """An operation as a sequence of named steps."""

    name: str
    steps: tuple[Step, ...]
    doc: str = ""
    #: Where it was declared: ``builtin``, ``config`` (arcodex.yaml) or ``plugin``.
    origin: str = "builtin"

    def names(self) -> list[str]:
        """The step names, in the order they run."""
        return [step.name for step in self.steps]

    def params(self) -> list[str] | None:
        """The parameters its steps read, or None when a step does not say."""
        known: set[str] = set()
        for step in self.steps:
            if step.params is None:
                return None
            known.update(step.params)
        return sorted(known)

    def inputs(self) -> str | None:
        """The parameter a run's inputs fill: the first step's that names one."""
        return next((step.inputs for step in self.steps if step.inputs), None)

    def to_dict(self) -> dict[str, Any]:
        """Name, origin, doc and each step (JSON-ready)."""
        return {
            "name": self.name,
            "origin": self.origin,
            "doc": self.doc,
            "steps": [step.to_dict() for step in self.steps],
        }


@dataclass
class PipelineContext:
    """What the steps of one run share.

    Attributes:
        catalog: the catalog the steps act on (None for pipelines that need none).
        params: the inputs (a spec, the files to add, options).
        dry_run: run only the steps that change nothing.
        user: who runs it.
        state: what steps hand each other.
        uow: the unit of work while one is open (see :func:`open_unit`).
        timings: ``(step, seconds)`` of every step run, in order.
        skipped: the steps a dry run did not run.
    """

    catalog: CatalogWriter | None
    params: dict[str, Any]
    dry_run: bool = False
    user: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    uow: UnitOfWork | None = None
    timings: list[tuple[str, float]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pipeline: str | None = None
    step: str | None = None
    #: The operation of the unit of work, once a step has opened one.
    operation_id: str | None = None
    _stack: ExitStack | None = field(default=None, repr=False)

    def need_catalog(self) -> CatalogWriter:
        """The catalog, or a ValidationError naming the step that needs one."""
        if self.catalog is None:
            raise ValidationError(
                f"step {self.step or '?'} needs a catalog; pass --catalog PATH or open one"
            )
        return self.catalog

    def need(self, key: str, made_by: str) -> Any:
        """``state[key]``, or a ValidationError saying which earlier step makes it."""
        try:
            return self.state[key]
        except KeyError:
            raise ValidationError(
                f"step {self.step or '?'} of pipeline {self.pipeline or '?'} needs {key!r}, "
                f"which step {made_by} makes; put {made_by} before it"
            ) from None


def open_unit(
    ctx: PipelineContext,
    operation: str,
    *,
    inputs: Sequence[str] = (),
    parameters: Mapping[str, Any] | None = None,
) -> UnitOfWork:
    """Open the catalog's unit of work for the rest of the pipeline, and return it.

    The unit stays open until the last step has run: it commits then, or rolls
    everything back when a step fails. The step that opens it is journaled as
    started right after the unit's own ``started``.
    """
    if ctx.uow is not None:
        return ctx.uow
    catalog = ctx.need_catalog()
    if ctx._stack is None:
        raise ArcodexError("open_unit is for steps that run_pipeline runs")
    ctx.uow = ctx._stack.enter_context(
        catalog.unit_of_work(operation, user=ctx.user, inputs=inputs, parameters=parameters)
    )
    ctx.operation_id = ctx.uow.operation.id
    if ctx.step is not None:
        ctx.uow.mark("step_started", step=ctx.step, pipeline=ctx.pipeline)
    return ctx.uow


def run_pipeline(pipeline: Pipeline, ctx: PipelineContext) -> PipelineContext:
    """Run the steps of ``pipeline`` in order (only the unchanging ones under ``dry_run``).

    A step that raises stops the pipeline; an open unit of work rolls back and the
    error propagates. Returns ``ctx`` with the state the steps left.
    """
    ctx.pipeline = pipeline.name
    # A unit of work open before the run (the caller's) is the caller's to close.
    opened_here = ctx.uow is None
    with ExitStack() as stack:
        if ctx.dry_run and ctx.catalog is not None:
            # A dry run leaves the event log as it was (its timings are in ctx.timings).
            stack.enter_context(ctx.catalog.events.muted())
        if opened_here:
            # Registered first, so it runs last: after the unit has committed or rolled back.
            stack.callback(_forget_unit, ctx)
            ctx._stack = stack
        try:
            for step in pipeline.steps:
                if ctx.dry_run and step.changes:
                    ctx.skipped.append(step.name)
                    continue
                _run_step(pipeline, step, ctx)
        finally:
            ctx.step = None
    return ctx


def _forget_unit(ctx: PipelineContext) -> None:
    ctx.uow = None
    ctx._stack = None


def _run_step(pipeline: Pipeline, step: Step, ctx: PipelineContext) -> None:
    catalog = ctx.catalog
    ctx.step = step.name
    uow = ctx.uow
    if catalog is not None:
        _step_hook(catalog, "before_step", pipeline, step, ctx)
    if uow is not None:
        uow.mark("step_started", step=step.name, pipeline=pipeline.name)
    started = time.perf_counter()
    step.fn(ctx)
    seconds = time.perf_counter() - started
    ctx.timings.append((step.name, seconds))
    if ctx.uow is not None:
        ctx.uow.mark("step_finished", step=step.name, pipeline=pipeline.name, seconds=seconds)
    if catalog is not None:
        catalog.events.emit(
            "pipeline.step",
            f"{pipeline.name}: {step.name} took {seconds:.3f} s",
            level="debug",
            operation_id=ctx.uow.operation.id if ctx.uow else None,
            user=ctx.user,
            pipeline=pipeline.name,
            step=step.name,
            seconds=round(seconds, 6),
            dry_run=ctx.dry_run,
        )
        _step_hook(catalog, "after_step", pipeline, step, ctx)


def _step_hook(
    catalog: CatalogWriter, point: str, pipeline: Pipeline, step: Step, ctx: PipelineContext
) -> None:
    if not catalog.hooks.names(point):
        return
    catalog.hooks.run(
        HookContext(
            point,
            operation=ctx.uow.operation if ctx.uow else None,
            step=step.name,
            pipeline=pipeline.name,
        )
    )


# -- finding steps and pipelines by name ------------------------------------------

_STEPS: dict[str, Step] = {}
_PIPELINES: dict[str, Pipeline] = {}


def register_step(step: Step) -> Step:
    """Make ``step`` known by its name (built-in steps; plugins use their registry)."""
    known = _STEPS.get(step.name)
    if known is not None and known.fn is not step.fn:
        raise ValidationError(f"a step named {step.name!r} is registered already")
    _STEPS[step.name] = step
    return step


def register_pipeline(pipeline: Pipeline) -> Pipeline:
    """Make a built-in pipeline known by its name."""
    known = _PIPELINES.get(pipeline.name)
    if known is not None and known.names() != pipeline.names():
        raise ValidationError(f"a pipeline named {pipeline.name!r} is registered already")
    _PIPELINES[pipeline.name] = pipeline
    return pipeline


def _plugin_registry() -> Registry:
    """The plugins' registry, told which step and pipeline names are built in (a plugin
    registering one of those is refused there, with a line naming it)."""
    from arcodex.plugins import registry

    reg = registry()
    reg.reserve("step", _STEPS)
    reg.reserve("pipeline", _PIPELINES)
    return reg


def _plugin_steps() -> dict[str, Step]:
    reg = _plugin_registry()
    found: dict[str, Step] = {}
    for name, (fn, info) in reg.steps().items():
        params = info.get("params")
        found[name] = Step(
            name,
            fn,
            changes=bool(info.get("changes", True)),
            doc=str(info.get("doc", "")),
            params=tuple(params) if params is not None else None,
            inputs=info.get("inputs"),
        )
    return found


def _plugin_pipelines() -> dict[str, list[str]]:
    reg = _plugin_registry()
    return {name: list(steps) for name, steps in reg.pipelines().items()}


def step_registry() -> dict[str, Step]:
    """Every known step by name: built-in ones, then those plugins register."""
    steps = dict(_STEPS)
    for name, step in _plugin_steps().items():
        steps.setdefault(name, step)
    return steps


def get_step(name: str) -> Step:
    """The step called ``name``, or a NotFoundError listing the known ones."""
    steps = step_registry()
    try:
        return steps[name]
    except KeyError:
        raise NotFoundError(
            f"no pipeline step {name!r}; known steps: {', '.join(sorted(steps)) or 'none'}"
        ) from None


def _declared(
    name: str, step_names: Sequence[str], origin: str, steps: Mapping[str, Step]
) -> Pipeline:
    unknown = [s for s in step_names if s not in steps]
    if unknown:
        where = "arcodex.yaml" if origin == "config" else f"a {origin}"
        raise ValidationError(
            f"pipeline {name!r} ({where}) names unknown step {unknown[0]!r}; "
            f"known steps: {', '.join(sorted(steps))}"
        )
    if not step_names:
        raise ValidationError(f"pipeline {name!r} has no steps; list the steps it runs")
    return Pipeline(name, tuple(steps[s] for s in step_names), origin=origin)


def _declarations(declared: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, Any]]:
    """Every pipeline name -> (origin, built-in Pipeline or step names), refusing clashes."""
    found: dict[str, tuple[str, Any]] = {n: ("builtin", p) for n, p in _PIPELINES.items()}
    for name, steps in (declared or {}).items():
        if name in found:
            raise ValidationError(
                f"pipeline {name!r} in arcodex.yaml has the name of a built-in pipeline; "
                "give it another name"
            )
        found[name] = ("config", list(steps))
    for name, steps in _plugin_pipelines().items():
        found.setdefault(name, ("plugin", steps))
    return found


def get_pipeline(name: str, declared: Mapping[str, Sequence[str]] | None = None) -> Pipeline:
    """The pipeline ``name``: built-in, declared in ``declared`` (a catalog's
    ``config.pipelines``) or by a plugin. An unknown name, or a declaration naming an
    unknown step, is refused with one line listing what is known."""
    if name in _PIPELINES and name not in (declared or {}):
        return _PIPELINES[name]  # a built-in name: no need to ask the plugins
    found = _declarations(declared)
    try:
        origin, what = found[name]
    except KeyError:
        raise NotFoundError(
            f"no pipeline {name!r}; known pipelines: {', '.join(sorted(found)) or 'none'} "
            "(declare one under `pipelines:` in arcodex.yaml)"
        ) from None
    if isinstance(what, Pipeline):
        return what
    return _declared(name, what, origin, step_registry())


def list_pipelines(declared: Mapping[str, Sequence[str]] | None = None) -> list[Pipeline]:
    """Every pipeline (built-in, arcodex.yaml, plugins), sorted by name."""
    return [get_pipeline(name, declared) for name in sorted(_declarations(declared))]
