"""Validation of STAC documents, offline: core STAC, then the arcodex metadata profile.

Core STAC is checked against the JSON Schemas pystac ships (no network).
Extension blocks (datacube, xarray assets) are checked by the profile, a
versioned JSON Schema bundled with arcodex (``schemas/``) that a catalog can
replace (``stac_profile`` in ``arcodex.yaml``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from arcodex.errors import ValidationError

__all__ = ["PROFILE", "Problem", "Report", "load_profile", "validate_stac"]

#: The profile shipped with arcodex.
PROFILE = "arcodex-profile-1.0.0.json"


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
class Report:
    """Every problem found in a set of STAC documents."""

    checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "checked": self.checked,
            "problems": [p.to_dict() for p in self.problems],
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
    documents: Sequence[Mapping[str, Any]], *, profile: Mapping[str, Any] | None = None
) -> Report:
    """Validate STAC dicts (Catalogs, Collections, Items) against core STAC and the profile."""
    from jsonschema import Draft7Validator

    report = Report()
    core = _core_validators()
    checker = Draft7Validator(dict(profile) if profile is not None else load_profile())
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
            for error in checker.iter_errors(dict(doc)):
                for problem in _leaves(error):
                    report.problems.append(
                        Problem(ident, _path(problem), _message(problem), "profile")
                    )
    return report


def _kind(doc: Mapping[str, Any]) -> str:
    return str(doc.get("type", ""))


def _core_validators() -> dict[str, Any]:
    from jsonschema import Draft7Validator
    from pystac.validation.local_validator import _read_schema, get_local_schema_cache
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry().with_resources(
        [(k, Resource.from_contents(v)) for k, v in get_local_schema_cache().items()]
    )
    version = "1.1.0"
    return {
        kind: Draft7Validator(_read_schema(f"stac-spec/v{version}/{name}.json"), registry=registry)
        for kind, name in (
            ("Feature", "item"),
            ("Collection", "collection"),
            ("Catalog", "catalog"),
        )
    }


def _leaves(error: Any) -> list[Any]:
    """The most specific errors under a oneOf/anyOf (what the user can act on)."""
    if not error.context:
        return [error]
    by_branch: dict[int, list[Any]] = {}
    for sub in error.context:
        by_branch.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)
    # The branch that got furthest (fewest errors after a type match) explains the failure.
    best = min(by_branch.values(), key=len)
    out: list[Any] = []
    for sub in best:
        out.extend(_leaves(sub))
    return out


def _path(error: Any) -> str:
    return "/".join(str(p) for p in error.absolute_path)


def _message(error: Any) -> str:
    text = str(error.message)
    return text if len(text) <= 200 else text[:197] + "..."
