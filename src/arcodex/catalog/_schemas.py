"""Optional validation of a record's metadata by a named, versioned schema.

A schema is a JSON Schema (kept in the catalog's database, so every process
and every host sharing the database sees it) or a Pydantic model registered
in-process (by a plugin). Catalogs made before the database kept them had
their JSON Schemas as files ``schemas/NAME@VERSION.json``: those are copied
into the database on first use (the files are left where they are). Records name theirs with
``schema_name``/``schema_version``; the policy says what a failure does:
``off`` (nothing), ``warn`` (logged, written anyway) or ``strict`` (refused
before anything is written).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from arcodex.errors import ArcodexError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from arcodex.backends import CatalogBackend

__all__ = ["Policy", "SchemaRegistry", "SchemaResult", "parse_schema_ref", "schema_parts"]

_log = logging.getLogger("arcodex.catalog")
Policy = Literal["off", "warn", "strict"]
_REF = re.compile(
    r"^(?P<name>[A-Za-z][A-Za-z0-9_.-]{0,99})@(?P<version>[A-Za-z0-9][A-Za-z0-9_.-]{0,49})$"
)


def parse_schema_ref(ref: str) -> tuple[str, str]:
    """``name@version`` as its two parts; ValidationError otherwise."""
    match = _REF.match(ref.strip())
    if match is None:
        raise ValidationError(f"bad schema reference {ref!r}; write NAME@VERSION, e.g. obs@1")
    return match["name"], match["version"]


def schema_parts(ref: str) -> tuple[str, str | None]:
    """``name@version`` or a bare ``name`` (meaning its latest version)."""
    if "@" in ref:
        return parse_schema_ref(ref)
    parse_schema_ref(f"{ref}@1")  # checks the name
    return ref, None


@dataclass
class SchemaResult:
    """The outcome of validating one record (or document) against its schema."""

    valid: bool
    schema: str | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    record_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return asdict(self)


class SchemaRegistry:
    """JSON Schemas in the catalog's database (or, without one, files in ``directory``)
    plus Pydantic models registered in this process, plus the schemas of plugins
    (joined on first use; the catalog's own win on a clash)."""

    def __init__(
        self, directory: Path, *, backend: CatalogBackend | None = None, plugins: bool = True
    ) -> None:
        self.directory = directory
        self.backend = backend
        self._models: dict[str, type[BaseModel]] = {}
        self._documents: dict[str, dict[str, Any]] = {}  # plugins' JSON Schemas, in-process
        self._plugins_pending = plugins
        self._files_pending = backend is not None
        self._files_too = False  # old files that could not be imported are read in place

    # -- where the catalog's own JSON Schemas are kept -----------------------------------

    def _files(self) -> dict[str, Path]:
        if not self.directory.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.directory.glob("*@*.json")) if p.is_file()}

    def _import_files(self) -> None:
        """Copy schema files of an older catalog into the database, once per process; a
        key the database has already is left as the database has it."""
        if not self._files_pending or self.backend is None:
            return
        self._files_pending = False
        files = self._files()
        if not files:
            return
        stored = set(self.backend.schema_keys())
        for key, path in files.items():
            if key in stored or _REF.match(key) is None:
                continue
            try:
                text = path.read_text(encoding="utf-8")
                json.loads(text)
            except (OSError, ValueError) as exc:
                _log.warning("schema file %s is not imported: %s", path, exc)
                continue
            try:
                self.backend.put_schema(key, text)
            except ArcodexError as exc:  # a read-only database: use the files where they are
                _log.warning("schema file %s is not imported: %s", path, exc)
                self._files_too = True

    def _stored(self) -> set[str]:
        """The keys of the catalog's own JSON Schemas."""
        if self.backend is None:
            return set(self._files())
        self._import_files()
        keys = set(self.backend.schema_keys())
        return keys | set(self._files()) if self._files_too else keys

    def _stored_document(self, key: str) -> dict[str, Any]:
        if self.backend is None:
            text: str | None = (self.directory / f"{key}.json").read_text(encoding="utf-8")
        else:
            self._import_files()
            text = self.backend.schema_text(key)
            path = self.directory / f"{key}.json"
            if text is None and self._files_too and path.is_file():
                text = path.read_text(encoding="utf-8")
        if text is None:
            raise NotFoundError(f"no schema {key!r}; register it with `arcodex schema add`")
        document: dict[str, Any] = json.loads(text)
        return document

    def _join_plugins(self) -> None:
        if not self._plugins_pending:
            return
        self._plugins_pending = False
        from arcodex.plugins import registry

        stored = self._stored()
        for name, version, schema in registry().schemas():
            key = f"{name}@{version}"
            if key in self._models or key in stored:
                continue
            if isinstance(schema, type) and issubclass(schema, BaseModel):
                self._models[key] = schema
            elif isinstance(schema, dict):
                try:
                    _check_schema(schema, key)
                except ValidationError as exc:
                    _log.warning("a plugin's schema is refused: %s", exc)
                    continue
                self._documents[key] = schema

    def register(self, ref: str, schema: type[BaseModel] | dict[str, Any] | str | Path) -> str:
        """Add a schema under ``name@version``: a Pydantic model (this process only),
        or a JSON Schema (a dict or a file), checked and then stored with the catalog."""
        name, version = parse_schema_ref(ref)
        key = f"{name}@{version}"
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self._models[key] = schema
            return key
        document = _load_schema(schema) if not isinstance(schema, dict) else schema
        _check_schema(document, key)
        text = json.dumps(document, indent=2, sort_keys=True)
        if self.backend is not None:
            self._import_files()  # an old file of the same key must not win over this later
            self.backend.put_schema(key, text)
            return key
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{key}.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
        return key

    def names(self) -> list[str]:
        """Every registered ``name@version``, sorted."""
        self._join_plugins()
        return sorted(self._stored() | set(self._models) | set(self._documents))

    def validate(self, metadata: dict[str, Any], name: str, version: str | None) -> SchemaResult:
        """Check ``metadata`` against ``name@version`` (latest registered if no version)."""
        key = self._resolve(name, version)
        model = self._models.get(key)
        plugin_document = self._documents.get(key)
        if model is not None:
            try:
                model.model_validate(metadata)
            except ValueError as exc:
                details: list[dict[str, Any]] = getattr(exc, "errors", list)()
                return SchemaResult(
                    False,
                    key,
                    [
                        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                        for e in details
                    ]
                    or [str(exc)],
                )
            return SchemaResult(True, key)
        import jsonschema

        document = plugin_document or self._stored_document(key)
        validator = jsonschema.validators.validator_for(document)(document)
        problems = sorted(validator.iter_errors(metadata), key=lambda e: list(e.absolute_path))
        errors: list[str] = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in problems
        ]
        return SchemaResult(not errors, key, errors)

    def document(self, name: str, version: str | None = None) -> dict[str, Any]:
        """The JSON Schema of ``name@version`` (latest registered if no version); a
        Pydantic model's is generated from it."""
        key = self._resolve(name, version)
        model = self._models.get(key)
        if model is not None:
            return model.model_json_schema()
        return self._documents.get(key) or self._stored_document(key)

    def resolve(self, name: str, version: str | None) -> str:
        """The registered ``name@version`` meant (latest version when none is given)."""
        return self._resolve(name, version)

    def _resolve(self, name: str, version: str | None) -> str:
        self._join_plugins()
        if version:
            key = f"{name}@{version}"
            if key in self._models or key in self._documents or key in self._stored():
                return key
        else:
            candidates = [n for n in self.names() if n.split("@", 1)[0] == name]
            if candidates:
                return max(candidates, key=lambda n: _version_key(n.split("@", 1)[1]))
        known = ", ".join(self.names()) or "none"
        wanted = f"{name}@{version}" if version else name
        raise NotFoundError(
            f"no schema {wanted!r} (registered: {known}); register it with `arcodex schema add`"
        )


def _version_key(version: str) -> tuple[Any, ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[._-]", version))


def _load_schema(source: str | Path) -> dict[str, Any]:
    path = Path(source).expanduser()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NotFoundError(f"cannot read schema file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"schema file {path} is not JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(document, dict):
        raise ValidationError(f"schema file {path} must hold a JSON object (a JSON Schema)")
    return document


def _check_schema(document: dict[str, Any], key: str) -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(document).check_schema(document)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValidationError(
            f"schema {key} is not a valid JSON Schema at {where}: {exc.message}"
        ) from None
