"""Running pipelines on a catalog by name: the built-in ones, those ``arcodex.yaml``
declares under ``pipelines:``, and those plugins register."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from arcodex.catalog._events import current_user
from arcodex.catalog._pipeline import (
    Pipeline,
    PipelineContext,
    get_pipeline,
    list_pipelines,
    run_pipeline,
)
from arcodex.catalog._writing import CatalogWriter
from arcodex.errors import ValidationError
from arcodex.model import Record

__all__ = ["PipelineRun", "Running"]


@dataclass
class PipelineRun:
    """What one run of a pipeline did, or under ``dry_run`` would do.

    Attributes:
        pipeline: its name.
        dry_run: only the steps that change nothing ran.
        steps: each step: name, whether it changes anything, whether it ran, seconds.
        items: what the run acts on (for adds: each file, its record and planned path,
            and its refusals).
        records: the records written (none in a dry run).
        operation_id: the operation the run made, if it opened one.
    """

    pipeline: str
    dry_run: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    operation_id: str | None = None

    @property
    def refusals(self) -> list[str]:
        """Every refusal of every item, in order."""
        return [why for item in self.items for why in getattr(item, "refusals", ())]

    @classmethod
    def of(cls, pipeline: Pipeline, ctx: PipelineContext) -> PipelineRun:
        """The report of a finished run."""
        seconds = dict(ctx.timings)
        steps = [
            {
                "name": step.name,
                "changes": step.changes,
                "ran": step.name in seconds,
                "seconds": round(seconds[step.name], 6) if step.name in seconds else None,
            }
            for step in pipeline.steps
        ]
        return cls(
            pipeline=pipeline.name,
            dry_run=ctx.dry_run,
            steps=steps,
            items=list(ctx.state.get("plan") or []),
            records=[] if ctx.dry_run else list(ctx.state.get("records") or []),
            operation_id=ctx.operation_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with stable keys."""
        return {
            "pipeline": self.pipeline,
            "dry_run": self.dry_run,
            "steps": self.steps,
            "items": [i.to_dict() if hasattr(i, "to_dict") else i for i in self.items],
            "refusals": self.refusals,
            "records": [r.model_dump(mode="json") for r in self.records],
            "operation_id": self.operation_id,
        }


class Running(CatalogWriter):
    """The part of a catalog that finds and runs pipelines."""

    def pipelines(self) -> list[Pipeline]:
        """Every pipeline this catalog can run: built-in, declared in ``arcodex.yaml``
        (``pipelines:``) and registered by plugins, sorted by name."""
        return list_pipelines(self.config.pipelines)

    def run_pipeline(
        self,
        name: str,
        inputs: Sequence[str] = (),
        *,
        params: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        user: str | None = None,
    ) -> PipelineRun:
        """Run the pipeline ``name`` on ``inputs`` (files for the add steps) with ``params``.

        With ``dry_run`` only the steps that change nothing run: the catalog, its files
        and its event log stay as they were, and the report says what would be done.
        An unknown pipeline, parameter or step is refused with one line naming the
        known ones.
        """
        user = user or current_user()
        # A dry run leaves the event log as it was, refusals included.
        with self.events.muted() if dry_run else nullcontext(), self._checking(name, user):
            pipeline = get_pipeline(name, self.config.pipelines)
            values = dict(params or {})
            known = pipeline.params()
            if known is not None:
                unknown = sorted(set(values) - set(known))
                if unknown:
                    raise ValidationError(
                        f"pipeline {name} takes no parameter {unknown[0]!r}; "
                        f"its parameters: {', '.join(known)}"
                    )
            if inputs:
                slot = pipeline.inputs()
                if slot is None:
                    raise ValidationError(
                        f"pipeline {name} takes no inputs; give its parameters with --param"
                    )
                if slot in values:
                    raise ValidationError(
                        f"give the {slot} of pipeline {name} as inputs or as --param, not both"
                    )
                values[slot] = list(inputs)
            ctx = run_pipeline(pipeline, PipelineContext(self, values, dry_run=dry_run, user=user))
        return PipelineRun.of(pipeline, ctx)
