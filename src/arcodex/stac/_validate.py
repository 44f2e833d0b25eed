"""Validation of STAC documents, offline: core STAC, the extensions, then the arcodex profile.

Core STAC is checked against the JSON Schemas pystac ships. Each extension a
document declares in ``stac_extensions`` is checked against the official
schema of that extension if it is in the local schema cache
(:mod:`arcodex.stac._schemas`, filled once by ``arcodex stac schemas fetch``);
an extension whose schema is not cached gives a notice, not a problem, unless
``strict_extensions`` is set. Validation never uses the network: a schema that
refers to one that is not cached gives a problem instead of a download.

Last comes the profile, a versioned JSON Schema bundled with arcodex
(``schemas/``) that a catalog can replace (``stac_profile`` in ``arcodex.yaml``):
what arcodex requires beyond the extensions (a described datacube, openable
assets, licensing).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from arcodex.errors import ValidationError
from arcodex.stac._schemas import FETCH_HINT, cache_path, load_cached, schema_cache_dir

__all__ = ["PROFILE", "Notice", "Problem", "Report", "load_profile", "validate_stac"]

#: The profile shipped with arcodex.
PROFILE = "arcodex-profile-1.0.0.json"

NOT_CACHED = f"extension schema not cached: {FETCH_HINT}"


@dataclass
class Problem:
    """One validation error: where, what, and by which schema."""

    id: str
    path: str
    message: str
    schema: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class Notice:
    """Something validation could not check; the documents stay valid."""

    schema: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class Report:
    """Every problem found in a set of STAC documents, and what could not be checked."""

    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def notice(self, schema: str, message: str) -> None:
        """Add a notice once, however many documents it concerns."""
        notice = Notice(schema, message)
        if notice not in self.notices:
            self.notices.append(notice)

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "checked": self.checked,
            "problems": [p.to_dict() for p in self.problems],
            "notices": [n.to_dict() for n in self.notices],
        }


def load_profile(path: str | Path | None = None) -> dict[str, Any]:
    """The profile schema: ``path`` if given, else the bundled one."""
    try:
        if path is None:
            text = resources.files("arcodex.stac").joinpath("schemas", PROFILE).read_text("utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        profile: dict[str, Any] = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read the STAC profile {path or PROFILE}: {exc}") from None
    return profile


def validate_stac(
    documents: Sequence[Mapping[str, Any]],
    *,
    profile: Mapping[str, Any] | None = None,
    schema_cache: str | os.PathLike[str] | None = None,
    strict_extensions: bool = False,
) -> Report:
    """Validate STAC dicts (Catalogs, Collections, Items): core STAC, extensions, the profile.

    Args:
        documents: the STAC documents, as dicts.
        profile: the profile schema (default: the bundled one, :func:`load_profile`).
        schema_cache: the extension schema cache (default: ``$ARCODEX_STAC_SCHEMAS``,
            else the user cache directory).
        strict_extensions: an extension whose schema is not cached is a problem,
            not a notice.
    """
    from jsonschema import Draft7Validator

    report = Report()
    core = _core_validators()
    extensions = _Extensions(schema_cache_dir(schema_cache))
    checker = Draft7Validator(
        dict(profile) if profile is not None else load_profile(), registry=extensions.registry
    )
    for doc in documents:
        report.checked += 1
        kind = _kind(doc)
        ident = str(doc.get("id", "?"))
        validator = core.get(kind)
        if validator is None:
            report.problems.append(
                Problem(ident, "", f"not a STAC document (type {kind!r})", "core")
            )
            continue
        for error in sorted(validator.iter_errors(dict(doc)), key=lambda e: list(e.path)):
            report.problems.append(Problem(ident, _path(error), _message(error), "core"))
        if kind in ("Collection", "Feature"):
            extensions.check(doc, ident, report, strict=strict_extensions)
            report.problems += [
                _with_fix(p, doc) for p in _problems(checker, doc, ident, "profile")
            ]
    return report


#: Where a Collection's providers and license come from, in the order arcodex reads them.
_FIXES = {
    "providers": (
        "institution='My Lab'",
        "a NetCDF global attribute (institution, creator_name or publisher_name)",
        "providers: [{name: My Lab, roles: [producer, host]}]",
    ),
    "license": ("license=CC-BY-4.0", "a NetCDF global attribute license", "license: CC-BY-4.0"),
}


def _with_fix(problem: Problem, doc: Mapping[str, Any]) -> Problem:
    """A profile problem with a Collection's providers or license, with how to fix it."""
    field = problem.path or next((f for f in _FIXES if f"'{f}'" in problem.message), "")
    if doc.get("type") != "Collection" or field not in _FIXES:
        return problem
    assign, attribute, yaml = _FIXES[field]
    if "arcodex:where" in doc:  # a configured group: its own entry in stac_collections
        fix = (
            f"set {field} in the stac_collections entry {problem.id} of arcodex.yaml, on its "
            f"members (arcodex update ID --set {assign}), or as a default (stac_defaults: "
            f"{yaml})"
        )
    else:
        fix = (
            f"name it with {attribute} in the source files or arcodex convert --set-attr "
            f"{assign}, with arcodex update {problem.id} --set {assign}, or as a catalog-wide "
            f"default in arcodex.yaml (stac_defaults: {yaml})"
        )
    return Problem(problem.id, problem.path, f"{problem.message}; {fix}", problem.schema)


def _kind(doc: Mapping[str, Any]) -> str:
    return str(doc.get("type", ""))


def _core_registry() -> Any:
    from pystac.validation.local_validator import get_local_schema_cache
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry().with_resources(
        [(k, Resource.from_contents(v)) for k, v in get_local_schema_cache().items()]
    )
    return registry


def _core_validators() -> dict[str, Any]:
    from jsonschema import Draft7Validator
    from pystac.validation.local_validator import _read_schema

    registry = _core_registry()
    version = "1.1.0"
    return {
        kind: Draft7Validator(_read_schema(f"stac-spec/v{version}/{name}.json"), registry=registry)
        for kind, name in (
            ("Feature", "item"),
            ("Collection", "collection"),
            ("Catalog", "catalog"),
        )
    }


class _NotCachedError(LookupError):
    """A schema an extension schema refers to is not in the cache (and will not be fetched)."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"{uri} is not in the schema cache; validation does not download")
        self.uri = uri


class _Extensions:
    """The validators of the cached extension schemas, built once per URI."""

    def __init__(self, cache: Path) -> None:
        from referencing import Registry

        self.cache = cache
        self.validators: dict[str, Any] = {}
        # pystac's core schemas, then the cache; anything else is refused, never downloaded.
        # (``retrieve`` is an attrs alias of a private field, which mypy does not see.)
        cached: Registry[Any] = Registry(retrieve=self._retrieve)  # type: ignore[call-arg]
        self.registry: Registry[Any] = cached.combine(_core_registry())

    def _retrieve(self, uri: str) -> Any:
        from referencing import Resource
        from referencing.jsonschema import DRAFT7

        try:
            schema = load_cached(uri, self.cache)
        except ValidationError as exc:
            raise _NotCachedError(uri) from exc
        if schema is None:
            raise _NotCachedError(uri)
        return Resource.from_contents(schema, default_specification=DRAFT7)

    def validator(self, uri: str) -> Any:
        """The validator of extension ``uri``; None if its schema is not cached."""
        if uri not in self.validators:
            from jsonschema import Draft7Validator
            from jsonschema.exceptions import SchemaError

            schema = load_cached(uri, self.cache)
            if schema is not None:
                try:
                    Draft7Validator.check_schema(schema)
                except SchemaError as exc:
                    raise ValidationError(
                        f"the cached schema {cache_path(uri, self.cache)} is not a valid Draft 7 "
                        f"schema ({exc.message}); delete it and {FETCH_HINT}"
                    ) from None
            self.validators[uri] = (
                None if schema is None else Draft7Validator(schema, registry=self.registry)
            )
        return self.validators[uri]

    def check(self, doc: Mapping[str, Any], ident: str, report: Report, *, strict: bool) -> None:
        """Validate ``doc`` against each extension it declares whose schema is cached."""
        declared = doc.get("stac_extensions") or []
        for uri in dict.fromkeys(str(u) for u in declared if isinstance(u, str)):
            try:
                cache_path(uri, self.cache)
            except ValidationError as exc:  # not a URL the cache can hold: nothing to check
                validator, message = None, str(exc)
            else:
                # A cached schema that is broken raises: that is for the user to fix, not a notice.
                validator, message = self.validator(uri), NOT_CACHED
            if validator is None:
                if strict:
                    report.problems.append(Problem(ident, "stac_extensions", message, uri))
                else:
                    report.notice(uri, message)
                continue
            report.problems += _problems(validator, doc, ident, uri)


def _problems(validator: Any, doc: Mapping[str, Any], ident: str, schema: str) -> list[Problem]:
    """The most specific errors of ``doc`` under ``validator``, as problems of ``schema``."""
    from referencing.exceptions import Unresolvable

    try:
        errors = sorted(validator.iter_errors(dict(doc)), key=lambda e: list(e.path))
        return [
            Problem(ident, _path(leaf), _message(leaf), schema)
            for error in errors
            for leaf in _leaves(error)
        ]
    except Unresolvable as exc:
        missing = _missing_uri(exc)
        message = (
            f"the schema refers to {missing}, which is not cached (validation never "
            f'downloads); run "arcodex stac schemas fetch {missing}"'
        )
        return [Problem(ident, "", message, schema)]


def _missing_uri(exc: BaseException) -> str:
    """The absolute URI a failed ``$ref`` needed (the cause our retrieve function raised)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, _NotCachedError):
            return cause.uri
        cause = cause.__cause__ or cause.__context__
    return str(getattr(exc, "ref", exc))


def _leaves(error: Any) -> list[Any]:
    """The most specific errors under a oneOf/anyOf (what the user can act on)."""
    if not error.context:
        return [error]
    by_branch: dict[int, list[Any]] = {}
    for sub in error.context:
        by_branch.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)
    # A branch for another kind of document (``type`` is not its const) is not the one meant;
    # of the others, the one that got furthest (fewest errors) explains the failure.
    best = min(by_branch.values(), key=lambda errors: (_other_kind(errors), len(errors)))
    out: list[Any] = []
    for sub in best:
        out.extend(_leaves(sub))
    return out


def _other_kind(errors: list[Any]) -> bool:
    return any(
        e.validator in ("const", "enum") and list(e.relative_path) == ["type"] for e in errors
    )


def _path(error: Any) -> str:
    return "/".join(str(p) for p in error.absolute_path)


def _message(error: Any) -> str:
    text = str(error.message)
    return text if len(text) <= 200 else text[:197] + "..."
