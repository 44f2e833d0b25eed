"""Hooks: named points in a flow where registered functions may add metadata,
warn, or fail the operation.

A hook receives a :class:`HookContext` and returns a :class:`HookResult` (or
None): structured results only, never a replacement object. Hooks run in a
deterministic order (``order``, then name). A *required* hook that raises
fails the operation, which then rolls back; an optional one that raises is
logged as a warning and the flow goes on. Every run is logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arcodex.errors import ArcodexError, ValidationError

if TYPE_CHECKING:
    from arcodex.catalog._events import EventLog
    from arcodex.model import Operation, Record

__all__ = ["HOOK_POINTS", "HookContext", "HookError", "HookRegistry", "HookResult"]

HOOK_POINTS = (
    "before_record_validate",
    "after_record_validate",
    "before_metadata_extract",
    "after_metadata_extract",
    "before_path_plan",
    "after_path_plan",
    "before_artifact_write",
    "after_artifact_write",
    "before_record_commit",
    "after_record_commit",
    "on_operation_error",
    "on_operation_rollback",
    "before_step",
    "after_step",
)


class HookError(ArcodexError, RuntimeError):
    """A required hook failed; the operation rolls back."""


@dataclass
class HookContext:
    """What a hook may look at (treat it as read-only; return changes in a HookResult)."""

    point: str
    operation: Operation | None = None
    record: Record | None = None
    path: Path | None = None
    key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    #: The pipeline step a ``before_step``/``after_step`` hook runs around.
    step: str | None = None
    #: The pipeline that step belongs to.
    pipeline: str | None = None


@dataclass
class HookResult:
    """What a hook may do: add or change metadata, and warn."""

    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


Hook = Callable[[HookContext], "HookResult | None"]


@dataclass(frozen=True)
class _Registered:
    name: str
    point: str
    fn: Hook
    required: bool
    order: int


class HookRegistry:
    """Hooks of one catalog (registered by code or by plugins).

    Plugins' hooks join the first time a hook point is looked at, so that a
    command that runs no hooks (``search``) imports no plugin.
    """

    def __init__(self, events: EventLog, *, plugins: bool = True) -> None:
        self.events = events
        self._hooks: dict[str, list[_Registered]] = {p: [] for p in HOOK_POINTS}
        self._plugins_pending = plugins

    def _join_plugins(self) -> None:
        if not self._plugins_pending:
            return
        self._plugins_pending = False
        from arcodex.plugins import registry

        for point, fn, options in registry().hooks():
            try:
                self.register(
                    point,
                    fn,
                    name=options.get("name"),
                    required=bool(options.get("required", False)),
                    order=int(options.get("order", 0)),
                )
            except ValidationError as exc:
                self.events.emit(
                    "plugin.refused",
                    f"plugin {options.get('plugin')!r}: hook refused: {exc}",
                    level="warning",
                    plugin=options.get("plugin"),
                    hook=options.get("name"),
                    point=point,
                )

    def register(
        self,
        point: str,
        fn: Hook,
        *,
        name: str | None = None,
        required: bool = True,
        order: int = 100,
    ) -> None:
        """Run ``fn`` at ``point``; lower ``order`` runs first, then by name."""
        if point not in self._hooks:
            raise ValidationError(
                f"unknown hook point {point!r}; use one of: {', '.join(HOOK_POINTS)}"
            )
        hook_name = str(name or getattr(fn, "__qualname__", None) or repr(fn))
        if any(h.name == hook_name for h in self._hooks[point]):
            raise ValidationError(f"a hook named {hook_name!r} is already registered at {point}")
        self._hooks[point].append(_Registered(hook_name, point, fn, required, order))
        self._hooks[point].sort(key=lambda h: (h.order, h.name))

    def names(self, point: str) -> list[str]:
        """The hooks at ``point`` in the order they run."""
        self._join_plugins()
        return [h.name for h in self._hooks.get(point, [])]

    def run(self, context: HookContext, *, raise_required: bool = True) -> HookResult:
        """Run every hook at ``context.point``; merged results (later hooks win on a key)."""
        self._join_plugins()
        merged = HookResult()
        op = context.operation
        for hook in self._hooks[context.point]:
            started = time.perf_counter()
            try:
                result = hook.fn(context)
                if result is not None and not isinstance(result, HookResult):
                    raise TypeError(f"returned {type(result).__name__}, not a HookResult or None")
            except Exception as exc:
                self.events.emit(
                    "hook.failed",
                    f"hook {hook.name} at {hook.point} failed: {exc}",
                    level="error" if hook.required else "warning",
                    operation_id=op.id if op else None,
                    record_id=context.record.id if context.record else None,
                    error=exc,
                    hook=hook.name,
                    point=hook.point,
                    required=hook.required,
                    step=context.step,
                )
                if hook.required and raise_required:
                    raise HookError(
                        f"required hook {hook.name} failed at {hook.point}: {exc}; "
                        "the operation was rolled back"
                    ) from exc
                continue
            result = result or HookResult()
            merged.metadata.update(result.metadata)
            merged.warnings.extend(result.warnings)
            self.events.emit(
                "hook.run",
                f"hook {hook.name} at {hook.point}",
                level="warning" if result.warnings else "debug",
                operation_id=op.id if op else None,
                record_id=context.record.id if context.record else None,
                hook=hook.name,
                point=hook.point,
                step=context.step,
                seconds=round(time.perf_counter() - started, 6),
                metadata_keys=sorted(result.metadata),
                warnings=result.warnings,
            )
        return merged
