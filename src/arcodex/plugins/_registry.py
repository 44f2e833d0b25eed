"""The process-wide plugin registry: entry-point discovery, settings, and what plugins gave.

Discovery is lazy: nothing reads the ``arcodex.plugins`` entry points (or
imports ``importlib.metadata``) until a query asks for what plugins
contributed, and each plugin is imported and registered at most once per
process (``reset`` starts over, for tests). A plugin whose import or
``register`` raises is marked ``failed`` with one line saying what to do;
nothing it registered is kept and the command goes on. Names that two plugins
claim (or that arcodex has built in, see :meth:`Registry.reserve`) go to the
first plugin, in name order; the later one's is refused with a line of its own.

The settings come from ``arcodex.yaml`` (``plugins: {enabled, allow}``, passed
to :meth:`Registry.configure`) and ``ARCODEX_PLUGINS`` (``off``, or a comma
list of the plugins allowed), the variable winning.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from arcodex.errors import ValidationError
from arcodex.plugins._registrar import KEYED_KINDS, KINDS, Contribution, PluginRegistrar

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_PLUGINS",
    "LoadedPlugin",
    "Registry",
    "parse_plugins_setting",
    "registry",
]

ENTRY_POINT_GROUP = "arcodex.plugins"
ENV_PLUGINS = "ARCODEX_PLUGINS"
Status = Literal["loaded", "failed", "disabled"]

_log = logging.getLogger("arcodex.plugins")
_OFF = frozenset({"off", "0", "false", "no", "none"})
_ON = frozenset({"on", "1", "true", "yes", "all"})
_LABELS = {
    "extractor": "extractor",
    "schema": "schema",
    "hook": "hook",
    "step": "step",
    "pipeline": "pipeline",
    "store": "store kind",
    "source_kind": "source kind",
    "profile_kind": "storage profile kind",
    "cli": "command group",
    "stac_formatter": "STAC formatter",
    "provider": "provider",
    "template": "dataset template",
}


def parse_plugins_setting(text: str) -> tuple[bool, tuple[str, ...] | None]:
    """``ARCODEX_PLUGINS`` as (enabled, allow-list): ``off``, ``on``, or ``name,name``."""
    value = text.strip()
    if value.lower() in _OFF:
        return False, None
    if value.lower() in _ON:
        return True, None
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise ValidationError(
            f"bad {ENV_PLUGINS}={text!r}; use off, on, or a comma list of plugin names"
        )
    return True, names


@dataclass(frozen=True)
class LoadedPlugin:
    """One installed plugin as this process sees it."""

    name: str
    dist: str | None
    version: str | None
    value: str
    status: Status
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return {
            "name": self.name,
            "dist": self.dist,
            "version": self.version,
            "value": self.value,
            "status": self.status,
            "error": self.error,
            "registered": {k: list(v) for k, v in self.registered.items()},
            "refused": list(self.refused),
        }


@dataclass
class _Plugin:
    """The mutable state of one entry point in this process."""

    name: str
    dist: str | None
    version: str | None
    value: str
    entry_point: EntryPoint | None
    attempted: bool = False
    error: str | None = None
    contributions: list[Contribution] = field(default_factory=list)

    def who(self) -> str:
        dist = " ".join(p for p in (self.dist, self.version) if p)
        return f"plugin {self.name!r}" + (f" (dist {dist})" if dist else "")


@dataclass
class _View:
    """What the active plugins contribute once clashes are settled."""

    accepted: dict[str, list[tuple[_Plugin, Contribution]]]
    refused: dict[str, list[str]]
    dropped: set[tuple[str, str, str]]


class Registry:
    """Installed plugins and what they registered (one per process: :func:`registry`)."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self._lock = threading.RLock()
        self._reset_state()

    def _reset_state(self) -> None:
        self._plugins: dict[str, _Plugin] | None = None
        self._enabled: bool | None = None
        self._allow: tuple[str, ...] | None = None
        self._reserved: dict[str, set[str]] = {}
        self._view: _View | None = None
        self._notices: list[str] = []
        self._noticed: set[str] = set()

    # -- settings -------------------------------------------------------------------------

    def configure(self, enabled: bool | None = None, allow: Sequence[str] | None = None) -> None:
        """Apply ``arcodex.yaml``'s ``plugins`` settings (``ARCODEX_PLUGINS`` still wins)."""
        with self._lock:
            new_allow = tuple(allow) if allow is not None else None
            if (enabled, new_allow) != (self._enabled, self._allow):
                self._enabled, self._allow = enabled, new_allow
                self._view = None

    def settings(self) -> tuple[bool, tuple[str, ...] | None]:
        """The settings in force: (enabled, allow-list or None for all)."""
        env = os.environ.get(ENV_PLUGINS, "").strip()
        if env:
            return parse_plugins_setting(env)
        return (self._enabled is not False), self._allow

    def _allowed(self, plugin: _Plugin) -> bool:
        enabled, allow = self.settings()
        if not enabled:
            return False
        return allow is None or plugin.name in allow or (plugin.dist or "") in allow

    def reserve(self, kind: str, names: Iterable[str]) -> None:
        """Names arcodex has built in for ``kind``; a plugin registering one is refused."""
        if kind not in KEYED_KINDS:
            raise ValueError(f"no names to reserve for {kind!r}; use one of {sorted(KEYED_KINDS)}")
        with self._lock:
            before = set(self._reserved.get(kind, ()))
            after = before | set(names)
            if after != before:
                self._reserved[kind] = after
                self._view = None

    def reset(self) -> None:
        """Forget everything: the next query discovers again (for tests)."""
        with self._lock:
            self._reset_state()

    # -- discovery ------------------------------------------------------------------------

    @property
    def discovered(self) -> bool:
        """Whether this process has read the entry points yet (no discovery is triggered)."""
        return self._plugins is not None

    def _entry_points(self) -> dict[str, _Plugin]:
        if self._plugins is not None:
            return self._plugins
        from importlib.metadata import entry_points

        found: dict[str, _Plugin] = {}
        for ep in sorted(entry_points(group=self.group), key=lambda e: (e.name, e.value)):
            dist = getattr(ep, "dist", None)
            dist_name = str(dist.metadata["Name"]) if dist is not None else None
            version = str(dist.version) if dist is not None else None
            plugin = _Plugin(ep.name, dist_name, version, ep.value, ep)
            if ep.name in found:
                first = found[ep.name]
                plugin.attempted = True
                plugin.error = (
                    f"{plugin.who()} was not loaded: the name is taken by {first.who()}; "
                    "uninstall one of them"
                )
                found[f"{ep.name} ({dist_name or ep.value})"] = plugin
                self._notice(plugin.error)
                continue
            found[ep.name] = plugin
        self._plugins = found
        return found

    def _load(self, plugin: _Plugin) -> None:
        plugin.attempted = True
        registrar = PluginRegistrar(plugin.name)
        try:
            assert plugin.entry_point is not None
            register = plugin.entry_point.load()
            if not callable(register):
                raise TypeError(
                    f"entry point {plugin.value!r} is a {type(register).__name__}, "
                    "not a register(registrar) function"
                )
            register(registrar)
        except (Exception, SystemExit) as exc:
            what = " ".join(str(exc).split()) or "(no message)"
            plugin.error = (
                f"{plugin.who()} failed to load: {type(exc).__name__}: {what}; "
                f"fix or uninstall it, or disable plugins with {ENV_PLUGINS}=off"
            )
            plugin.contributions = []
            self._notice(plugin.error)
        else:
            plugin.contributions = registrar.contributions
            _log.debug("%s loaded", plugin.who())
        self._view = None

    def _notice(self, line: str) -> None:
        """Keep ``line`` for :meth:`take_notices`, once per process."""
        if line not in self._noticed:
            self._noticed.add(line)
            self._notices.append(line)
            _log.debug(line)

    def _active(self) -> list[_Plugin]:
        """The allowed plugins, each loaded (once) on the way."""
        with self._lock:
            if not self.settings()[0]:
                return []  # switched off: not even the entry points are read
            active = []
            for plugin in self._entry_points().values():
                if plugin.entry_point is None or not self._allowed(plugin):
                    continue
                if not plugin.attempted:
                    self._load(plugin)
                if plugin.error is None:
                    active.append(plugin)
            return active

    def _settled(self) -> _View:
        with self._lock:
            active = self._active()
            if self._view is not None:
                return self._view
            accepted: dict[str, list[tuple[_Plugin, Contribution]]] = {k: [] for k in KINDS}
            refused: dict[str, list[str]] = {}
            dropped: set[tuple[str, str, str]] = set()
            owners: dict[tuple[str, str], _Plugin] = {}
            for plugin in active:
                for item in plugin.contributions:
                    key = (item.kind, item.name)
                    label = f"{_LABELS[item.kind]} {item.name!r}"
                    line = None
                    if item.kind in KEYED_KINDS and item.name in self._reserved.get(item.kind, ()):
                        line = f"{plugin.who()}: {label} is built into arcodex; refused"
                    elif item.kind in KEYED_KINDS and key in owners:
                        line = (
                            f"{plugin.who()}: {label} is already registered by "
                            f"plugin {owners[key].name!r}; refused"
                        )
                    if line is not None:
                        refused.setdefault(plugin.name, []).append(line)
                        dropped.add((plugin.name, item.kind, item.name))
                        self._notice(line)
                        continue
                    owners[key] = plugin
                    accepted[item.kind].append((plugin, item))
            self._view = _View(accepted, refused, dropped)
            return self._view

    def _items(self, kind: str) -> list[tuple[_Plugin, Contribution]]:
        return self._settled().accepted[kind]

    # -- what plugins contributed ---------------------------------------------------------

    def extractors(self) -> list[object]:
        """Metadata extractors (``arcodex.extract.Extractor`` instances)."""
        return [c.value for _, c in self._items("extractor")]

    def schemas(self) -> list[tuple[str, str, object]]:
        """(name, version, Pydantic model class or JSON Schema dict)."""
        return [c.value for _, c in self._items("schema")]

    def hooks(self) -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
        """(point, fn, {"name", "required", "order", "plugin"})."""
        out = []
        for _, c in self._items("hook"):
            options = dict(c.options)
            point = options.pop("point")
            out.append((point, c.value, options))
        return out

    def steps(self) -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
        """Step name -> (fn(ctx), {"changes", "doc"})."""
        return {c.name: (c.value, dict(c.options)) for _, c in self._items("step")}

    def pipelines(self) -> dict[str, list[str]]:
        """Pipeline name -> its step names."""
        return {c.name: list(c.value) for _, c in self._items("pipeline")}

    def stores(self) -> dict[str, object]:
        """Store kind -> factory (``callable(**params)``) or ``"pkg.mod:Class"``."""
        return {c.name: c.value for _, c in self._items("store")}

    def source_kinds(self) -> dict[str, object]:
        """URL scheme -> resolver."""
        return {c.name: c.value for _, c in self._items("source_kind")}

    def profile_kinds(self) -> dict[str, object]:
        """Storage profile kind -> factory."""
        return {c.name: c.value for _, c in self._items("profile_kind")}

    def cli_apps(self) -> dict[str, object]:
        """Command group name -> ``typer.Typer``."""
        return {c.name: c.value for _, c in self._items("cli")}

    def stac_formatters(self) -> list[Callable[..., Any]]:
        """``fn(record, item_dict) -> item_dict or None``, in plugin order."""
        return [c.value for _, c in self._items("stac_formatter")]

    def providers(self) -> dict[str, object]:
        """Provider name -> class or factory (``factory(catalog=None)``) or ``"pkg.mod:Class"``."""
        return {c.name: c.value for _, c in self._items("provider")}

    def templates(self) -> dict[str, tuple[str, object]]:
        """Template id -> (the plugin's name, an ``arcodex.ingest.Template`` or a dict)."""
        return {c.name: (plugin.name, c.value) for plugin, c in self._items("template")}

    def owner(self, kind: str, name: str) -> str | None:
        """The plugin whose ``kind`` named ``name`` is in use, if a plugin's."""
        for plugin, c in self._items(kind):
            if c.name == name:
                return plugin.name
        return None

    # -- the plugins themselves -----------------------------------------------------------

    def plugins(self, *, discover: bool = True) -> list[LoadedPlugin]:
        """Every installed plugin with its status and what it registered (loads the allowed);
        with ``discover=False``, only those this process has tried to load so far."""
        with self._lock:
            if not discover:
                tried = (self._plugins or {}).values()
                return [self._public(p) for p in tried if p.attempted]
            self._settled()
            return [self._public(p) for p in self._entry_points().values()]

    def loaded_versions(self) -> dict[str, str | None]:
        """Name -> version of the plugins loaded so far (never triggers discovery)."""
        with self._lock:
            if self._plugins is None:
                return {}
            return {
                p.name: p.version
                for p in self._plugins.values()
                if p.attempted and p.error is None and self._allowed(p)
            }

    def take_notices(self) -> list[str]:
        """The failure and refusal lines not yet taken (the CLI prints each once)."""
        with self._lock:
            notices, self._notices = self._notices, []
            return notices

    def _public(self, plugin: _Plugin) -> LoadedPlugin:
        status: Status
        if plugin.error is not None:
            status = "failed"
        elif not self._allowed(plugin) or not plugin.attempted:
            status = "disabled"
        else:
            status = "loaded"
        registered: dict[str, list[str]] = {}
        view = self._view
        refused = view.refused.get(plugin.name, []) if view is not None else []
        if status == "loaded":
            for item in plugin.contributions:
                if view is None or (plugin.name, item.kind, item.name) not in view.dropped:
                    registered.setdefault(item.kind, []).append(item.name)
        return LoadedPlugin(
            name=plugin.name,
            dist=plugin.dist,
            version=plugin.version,
            value=plugin.value,
            status=status,
            error=plugin.error,
            registered=registered,
            refused=list(refused),
        )


_REGISTRY = Registry()


def registry() -> Registry:
    """The registry of this process."""
    return _REGISTRY
