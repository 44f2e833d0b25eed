"""Loading dataset templates and extents from YAML, with every problem's file, line and field.

A file holds one document or several (``---``), each a mapping of one
template's (or extent's) fields or a list of them. The YAML is composed into
nodes first, so that each field's line is known; pydantic's error locations
are then mapped to those lines: ``templates/era5.yaml:12: provider.name:
field required; add it``.

The catalog's directories (``ingest: {templates, extents}`` in ``arcodex.yaml``,
default ``templates/`` and ``extents/`` when they exist) are read again only
for files whose modification time or size changed, so a server sees edits
without a restart at the cost of a directory listing. Templates registered by
plugins (the ``template`` kind) join those of the files; an id given twice is
an error naming both places.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from arcodex.errors import NotFoundError, ValidationError
from arcodex.ingest._model import Extent, Template

if TYPE_CHECKING:
    from arcodex.catalog import Catalog

__all__ = [
    "LoadError",
    "get_extent",
    "get_template",
    "load_extent_file",
    "load_extents",
    "load_template_file",
    "load_templates",
]

Kind = Literal["templates", "extents"]
M = TypeVar("M", Template, Extent)
_MODELS: dict[str, type[BaseModel]] = {"templates": Template, "extents": Extent}
_SUFFIXES = (".yaml", ".yml")


class LoadError(ValidationError):
    """Templates or extents that do not load; ``problems`` has one line per problem, each
    naming the file, the line and the field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class _Loaded:
    """One valid template or extent and where it was defined (``file:line`` or a plugin)."""

    model: Any
    where: str
    #: Where its ``provider.name`` is, for the provider check.
    provider_where: str


# -- YAML with lines ---------------------------------------------------------------------------


def _lines(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]
) -> None:
    """The line (1-based) of every key and list item under ``node``, by its path."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value) if isinstance(key, yaml.ScalarNode) else repr(key))
            out[sub] = key.start_mark.line + 1
            _lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _lines(item, (*path, i), out)


def _documents(text: str, label: str) -> tuple[list[tuple[Any, dict[Any, int]]], list[str]]:
    """Each item of each document (its data, the lines of its fields), and the problems."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "bad syntax"
        return [], [f"{label}{line}: not valid YAML: {what}; fix the syntax"]
    except yaml.YAMLError as exc:
        return [], [f"{label}: not valid YAML: {exc}; fix the syntax"]
    items: list[tuple[Any, dict[Any, int]]] = []
    problems: list[str] = []
    constructor = yaml.SafeLoader("")
    try:
        for node in nodes:
            if node is None:
                continue
            try:
                data = constructor.construct_document(node)
            except yaml.YAMLError as exc:
                at = node.start_mark.line + 1
                problems.append(f"{label}:{at}: not valid YAML: {exc}; fix the syntax")
                continue
            if isinstance(node, yaml.MappingNode):
                lines: dict[Any, int] = {(): node.start_mark.line + 1}
                _lines(node, (), lines)
                items.append((data, lines))
            elif isinstance(node, yaml.SequenceNode) and all(
                isinstance(n, yaml.MappingNode) for n in node.value
            ):
                for item, sub in zip(data, node.value, strict=True):
                    lines = {(): sub.start_mark.line + 1}
                    _lines(sub, (), lines)
                    items.append((item, lines))
            elif not (isinstance(node, yaml.ScalarNode) and data is None):
                problems.append(
                    f"{label}:{node.start_mark.line + 1}: a document must be a mapping of "
                    "fields, or a list of them; fix the file"
                )
    finally:
        constructor.dispose()
    return items, problems


# -- pydantic errors as lines ------------------------------------------------------------------


def _field(loc: Iterable[Any]) -> tuple[tuple[str | int, ...], str]:
    """The path of a pydantic location (union tags dropped) and how it is written."""
    path = tuple(p for p in loc if isinstance(p, int) or "[" not in str(p))
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return path, text


def _line_of(path: tuple[str | int, ...], lines: dict[Any, int]) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return lines.get((), 1)


def _fields_at(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The fields of the model found at ``path`` inside ``model`` (for 'unknown field')."""
    from typing import get_args

    current: Any = model
    for part in path:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
        else:  # a dict's key or a list's index: on to the type of its values
            args = [a for a in get_args(current) if a is not type(None)]
            current = args[-1] if args else None
        args = [a for a in get_args(current) if a is not type(None)]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            current = args[0]  # X | None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _explain(error: Any, model: type[BaseModel]) -> str:
    """One pydantic error as ``field: what; what to do``."""
    kind = error.get("type", "")
    path, field = _field(error.get("loc", ()))
    msg = str(error.get("msg", "invalid"))
    if msg.startswith(("Value error, ", "Assertion failed, ")):
        msg = msg.split(", ", 1)[1]
    msg = msg[:1].lower() + msg[1:]
    if kind == "missing":
        text = "field required; add it"
    elif kind == "extra_forbidden":
        known = _fields_at(model, path[:-1])
        text = "unknown field; remove it or fix its name" + (
            f" (the fields here are: {', '.join(known)})" if known else ""
        )
    elif kind == "string_pattern_mismatch" and path and path[-1] == "id":
        text = (
            "not an id; write lowercase letters, digits, '.', '_' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    elif field:
        text = f"{msg}; fix the value"
    else:  # the model's own check, of several fields
        text = f"{msg}; fix the {model.__name__.lower()}"
    return f"{field}: {text}" if field else text


# -- one file ----------------------------------------------------------------------------------


def _parse(path: Path, label: str, kind: Kind) -> tuple[list[_Loaded], list[str]]:
    """The valid models of one file (before the provider and duplicate checks), and problems."""
    model = _MODELS[kind]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{label}: cannot be read ({exc}); fix or remove the file"]
    items, problems = _documents(text, label)
    loaded: list[_Loaded] = []
    for data, lines in items:
        try:
            valid = model.model_validate(data)
        except PydanticValidationError as exc:
            for error in exc.errors():
                at = _line_of(_field(error.get("loc", ()))[0], lines)
                problems.append(f"{label}:{at}: {_explain(error, model)}")
            continue
        where = f"{label}:{_line_of(('id',), lines)}"
        provider = f"{label}:{_line_of(('provider', 'name'), lines)}"
        loaded.append(_Loaded(valid, where, provider))
    return loaded, problems


def _checked(loaded: Iterable[_Loaded], kind: Kind, problems: list[str]) -> dict[str, Any]:
    """Models by id: an id defined twice and an unknown provider are problems."""
    out: dict[str, Any] = {}
    first: dict[str, str] = {}
    names: list[str] | None = None
    for item in loaded:
        ident = item.model.id
        if ident in first:
            problems.append(
                f"{item.where}: id {ident!r} is already defined at {first[ident]}; "
                "rename or remove one of them"
            )
            continue
        first[ident] = item.where
        if kind == "templates":
            if names is None:
                from arcodex.ingest._registry import provider_names

                names = provider_names()
            if item.model.provider.name not in names:
                problems.append(
                    f"{item.provider_where}: provider.name: no provider "
                    f"{item.model.provider.name!r}; use one of: {', '.join(names)}"
                )
                continue
        out[ident] = item.model
    return dict(sorted(out.items()))


def _load_file(path: str | Path, kind: Kind) -> list[Any]:
    loaded, problems = _parse(Path(path), str(path), kind)
    found = _checked(loaded, kind, problems)
    if problems:
        raise LoadError(problems)
    return list(found.values())


def load_template_file(path: str | Path) -> list[Template]:
    """The templates of one YAML file.

    Raises:
        LoadError: A problem in the file (each named ``FILE:LINE: FIELD: …``).
    """
    return _load_file(path, "templates")


def load_extent_file(path: str | Path) -> list[Extent]:
    """The extents of one YAML file.

    Raises:
        LoadError: A problem in the file (each named ``FILE:LINE: FIELD: …``).
    """
    return _load_file(path, "extents")


# -- a catalog's directories -------------------------------------------------------------------

_lock = threading.Lock()
#: (kind, file) -> (mtime_ns, size, its valid models, its problems): files read once per change.
_cache: dict[tuple[str, str], tuple[int, int, list[_Loaded], list[str]]] = {}


def _directory(catalog: Catalog, kind: Kind, problems: list[str]) -> Path | None:
    configured: str | None = getattr(catalog.config.ingest, kind)
    root = Path(catalog.root)
    if configured:
        directory = root / configured
        if not directory.is_dir():
            problems.append(
                f"arcodex.yaml: ingest.{kind}: {configured!r} is not a directory under the "
                "catalog; create it or fix the setting"
            )
            return None
        return directory
    default = root / kind
    return default if default.is_dir() else None


def _label(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _from_files(catalog: Catalog, kind: Kind, problems: list[str]) -> list[_Loaded]:
    directory = _directory(catalog, kind, problems)
    if directory is None:
        return []
    root = Path(catalog.root)
    files = sorted(
        (p for p in directory.rglob("*") if p.suffix in _SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    loaded: list[_Loaded] = []
    with _lock:
        for path in files:
            key = (kind, str(path))
            try:
                stat = path.stat()
            except OSError:
                continue  # removed since it was listed
            cached = _cache.get(key)
            if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
                found, bad = _parse(path, _label(path, root), kind)
                cached = (stat.st_mtime_ns, stat.st_size, found, bad)
                _cache[key] = cached
            loaded += cached[2]
            problems += cached[3]
        # Files gone from the directory leave the cache with it.
        listed, prefix = {str(p) for p in files}, str(directory)
        for gone in [k for k in _cache if k[0] == kind and k[1].startswith(prefix)]:
            if gone[1] not in listed:
                del _cache[gone]
    return loaded


def _from_plugins(problems: list[str]) -> list[_Loaded]:
    from arcodex.plugins import registry

    loaded: list[_Loaded] = []
    for ident, (plugin, value) in registry().templates().items():
        label = f"plugin {plugin!r} (template {ident!r})"
        if isinstance(value, Template):
            loaded.append(_Loaded(value, label, label))
            continue
        data = value.model_dump() if isinstance(value, BaseModel) else value
        try:
            valid = Template.model_validate(data)
        except PydanticValidationError as exc:
            problems += [f"{label}: {_explain(e, Template)}" for e in exc.errors()]
            continue
        loaded.append(_Loaded(valid, label, label))
    return loaded


def load_templates(catalog: Catalog) -> dict[str, Template]:
    """The catalog's dataset templates by id: its template files', then plugins'.

    Raises:
        LoadError: Any problem in any of them (each named ``FILE:LINE: FIELD: …``).
    """
    problems: list[str] = []
    loaded = _from_files(catalog, "templates", problems) + _from_plugins(problems)
    found = _checked(loaded, "templates", problems)
    if problems:
        raise LoadError(problems)
    return found


def load_extents(catalog: Catalog) -> dict[str, Extent]:
    """The catalog's extents by id.

    Raises:
        LoadError: Any problem in any extent file (each named ``FILE:LINE: FIELD: …``).
    """
    problems: list[str] = []
    found = _checked(_from_files(catalog, "extents", problems), "extents", problems)
    if problems:
        raise LoadError(problems)
    return found


def get_template(catalog: Catalog, template_id: str) -> Template:
    """The template ``template_id``.

    Raises:
        NotFoundError: No template has that id (the message lists those that do).
        LoadError: The templates do not load.
    """
    found = load_templates(catalog)
    if template_id not in found:
        known = ", ".join(found) or "none"
        raise NotFoundError(
            f"no template {template_id!r}; the templates are: {known} (`arcodex templates`)"
        )
    return found[template_id]


def get_extent(catalog: Catalog, extent_id: str) -> Extent:
    """The extent ``extent_id``.

    Raises:
        NotFoundError: No extent has that id (the message lists those that do).
        LoadError: The extents do not load.
    """
    found = load_extents(catalog)
    if extent_id not in found:
        known = ", ".join(found) or "none"
        raise NotFoundError(
            f"no extent {extent_id!r}; the extents are: {known} (`arcodex extents`)"
        )
    return found[extent_id]
