"""What one plugin's ``register(registrar)`` may add, collected before anything is kept.

A :class:`PluginRegistrar` is handed to one plugin's ``register`` function. It
checks the shape of each contribution (names are non-empty strings, functions
are callable) and stores the objects as they are: the plugins package knows
nothing of extractors, schemas or stores, it only remembers who gave what.
The registry keeps a plugin's contributions only when ``register`` returns
without raising (all or nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from arcodex.errors import PluginError

__all__ = ["KINDS", "Contribution", "PluginRegistrar"]

#: Every kind of contribution, in the order ``arcodex plugins`` lists them.
KINDS = (
    "extractor",
    "schema",
    "hook",
    "step",
    "pipeline",
    "store",
    "source_kind",
    "profile_kind",
    "cli",
    "stac_formatter",
    "provider",
    "template",
)
#: Kinds whose names must be unique across arcodex and every plugin (a clash is refused).
KEYED_KINDS = frozenset(KINDS) - {"hook", "stac_formatter"}


@dataclass(frozen=True)
class Contribution:
    """One thing a plugin registered: its kind, its name, and the objects themselves."""

    kind: str
    name: str
    value: Any
    options: tuple[tuple[str, Any], ...] = ()


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PluginError(f"{what} must be a non-empty string, not {value!r}")
    return value.strip()


def _callable(value: object, what: str) -> None:
    if not callable(value):
        raise PluginError(f"{what} must be callable, not {type(value).__name__}")


def _label(fn: object) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


class PluginRegistrar:
    """Handed to a plugin's ``register``: every ``add_*`` records one contribution."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.contributions: list[Contribution] = []

    def _add(self, kind: str, name: str, value: Any, /, **options: Any) -> None:
        if kind in KEYED_KINDS and any(
            c.kind == kind and c.name == name for c in self.contributions
        ):
            raise PluginError(f"{kind.replace('_', ' ')} {name!r} is registered twice")
        self.contributions.append(Contribution(kind, name, value, tuple(options.items())))

    def add_extractor(self, extractor: object) -> None:
        """A metadata extractor (``arcodex.extract.Extractor``: ``name``, ``matches``, ``extract``)."""
        for attr in ("matches", "extract"):
            _callable(getattr(extractor, attr, None), f"extractor.{attr}")
        name = _name(getattr(extractor, "name", None), "extractor.name")
        self._add("extractor", name, extractor)

    def add_schema(self, name: str, version: str, schema: object) -> None:
        """A metadata schema: a Pydantic model class or a JSON Schema dict, as ``name@version``."""
        if not (isinstance(schema, (dict, type))):
            raise PluginError(
                f"schema {name}@{version} must be a Pydantic model class or a JSON Schema dict"
            )
        key = f"{_name(name, 'schema name')}@{_name(version, 'schema version')}"
        self._add("schema", key, (name.strip(), version.strip(), schema))

    def add_hook(
        self,
        point: str,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        required: bool = False,
        order: int = 0,
    ) -> None:
        """A hook run at ``point`` (one of ``arcodex.catalog.HOOK_POINTS``)."""
        _callable(fn, "hook")
        hook_name = _name(name, "hook name") if name is not None else f"{self.plugin}.{_label(fn)}"
        self._add(
            "hook",
            f"{_name(point, 'hook point')}:{hook_name}",
            fn,
            point=point.strip(),
            plugin=self.plugin,
            name=hook_name,
            required=bool(required),
            order=int(order),
        )

    def add_step(
        self, name: str, fn: Callable[..., Any], *, changes: bool = True, doc: str = ""
    ) -> None:
        """A pipeline step ``fn(ctx)``; ``changes=False`` lets ``--dry-run`` run it."""
        _callable(fn, f"step {name!r}")
        self._add("step", _name(name, "step name"), fn, changes=bool(changes), doc=str(doc))

    def add_pipeline(self, name: str, steps: Sequence[str]) -> None:
        """A pipeline: a name for a sequence of step names."""
        if isinstance(steps, str) or not steps:
            raise PluginError(f"pipeline {name!r} needs a non-empty list of step names")
        names = [_name(s, f"a step of pipeline {name!r}") for s in steps]
        self._add("pipeline", _name(name, "pipeline name"), names)

    def add_store(self, kind: str, factory: object) -> None:
        """A store kind: a factory ``callable(**params) -> store`` or ``"pkg.mod:Class"``."""
        if not isinstance(factory, str):
            _callable(factory, f"store {kind!r}")
        self._add("store", _name(kind, "store kind"), factory)

    def add_source_kind(self, scheme: str, resolver: object) -> None:
        """A source kind: the URL scheme it answers (``myprov`` for ``myprov://…``);
        ``resolver(url, storage_options: dict)`` -> the paths or URLs the source stands for."""
        _callable(resolver, f"source kind {scheme!r}")
        self._add("source_kind", _name(scheme, "URL scheme").lower(), resolver)

    def add_profile_kind(self, kind: str, factory: object) -> None:
        """A storage profile kind (``type:`` in ``arcodex.yaml``):
        ``factory(name, settings: dict, catalog_root: Path)`` -> an ``arcodex.storage``
        ``LocalStore`` or ``FsspecStore``."""
        _callable(factory, f"profile kind {kind!r}")
        self._add("profile_kind", _name(kind, "profile kind"), factory)

    def add_cli(self, name: str, app: object) -> None:
        """A command group, run as ``arcodex NAME …`` (a ``typer.Typer``)."""
        if app is None:
            raise PluginError(f"command group {name!r} needs a typer.Typer app")
        self._add("cli", _name(name, "command group name"), app)

    def add_provider(self, name: str, factory: object) -> None:
        """An ingestion provider: a class or factory ``factory(catalog=None)`` -> an
        ``arcodex.ingest.Provider``, or ``"pkg.mod:Class"``; templates name it in
        ``provider.name``."""
        if not isinstance(factory, str):
            _callable(factory, f"provider {name!r}")
        self._add("provider", _name(name, "provider name"), factory)

    def add_template(self, template: object) -> None:
        """A dataset template: an ``arcodex.ingest.Template`` or a dict of its fields
        (validated when templates are loaded, like a YAML file's)."""
        raw = template.get("id") if isinstance(template, dict) else getattr(template, "id", None)
        self._add("template", _name(raw, "template id"), template)

    def add_stac_formatter(self, fn: Callable[..., Any]) -> None:
        """A STAC formatter ``fn(record, item_dict) -> item_dict`` (or None to keep the item)."""
        _callable(fn, "STAC formatter")
        self._add("stac_formatter", f"{self.plugin}.{_label(fn)}", fn)
