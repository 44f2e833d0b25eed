"""The convert spec of a command line: a ``--spec`` file with the options typed over it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    from arcodex.convert import ConvertSpec

__all__ = ["build_spec", "given_options", "print_spec_of"]


#: CLI options -> what they set in the spec (the rest are named as the spec's fields).
_ATTR_OPTIONS = ("set_attr", "del_attr", "rename_attr", "attrs_file", "force_attrs")


def build_spec(
    spec_file: Path | None, sources: list[str] | None, values: dict[str, Any]
) -> ConvertSpec:
    """The spec of ``--spec FILE`` (if any) with the options given on the command line
    (``values``: only those the user typed) and ``sources`` over its values."""
    from arcodex.convert import AttrFixes, ConvertSpec

    fields = ConvertSpec.from_file(spec_file).to_dict() if spec_file else {}
    if spec_file is not None:
        # Relative paths in the file are relative to the file, not to where arcodex runs.
        fields = _from_file_dir(fields, spec_file.parent)
    if sources:
        fields["sources"] = sources if len(sources) > 1 else sources[0]
    if any(name in values for name in _ATTR_OPTIONS):
        fixes = AttrFixes.parse(
            values.get("set_attr") or (),
            values.get("del_attr") or (),
            values.get("rename_attr") or (),
            values.get("attrs_file"),
            force=bool(values.get("force_attrs")),
        )
        fields["attrs"] = fixes.to_dict() or None
    for name, value in values.items():
        if name in _ATTR_OPTIONS:
            continue
        if name == "no_check":
            fields["check"] = not value
        elif name == "coords":
            fields["grid_coords"] = _pairs(value)
        elif name == "variables":
            fields["variables"] = _list(value)
        elif name == "grid":
            fields["grid"] = str(value) if value is not None else None
        else:
            fields[name] = value
    if "sources" not in fields:
        raise ValidationError("say what to convert: SOURCES (files, a glob, URLs) or --spec FILE")
    return ConvertSpec.from_dict(fields)


def _from_file_dir(fields: dict[str, Any], base: Path) -> dict[str, Any]:
    def anchored(text: str) -> str:
        if "://" in text or Path(text).is_absolute():
            return text
        return str(base / text)

    out = dict(fields)
    sources = out.get("sources")
    if isinstance(sources, str):
        out["sources"] = anchored(sources)
    elif isinstance(sources, list):
        out["sources"] = [anchored(s) for s in sources]
    for name in ("dest", "grid"):
        if isinstance(out.get(name), str):
            out[name] = anchored(out[name])
    return out


def print_spec_of(spec: ConvertSpec, as_json: bool) -> None:
    """Print ``spec`` as YAML (as a --spec file holds it) or JSON."""
    from arcodex.cli._render import print_json

    if as_json:
        print_json(spec.to_dict())
        return
    import yaml

    typer.echo(yaml.safe_dump(spec.to_dict(), sort_keys=False).rstrip())


def given_options(ctx: typer.Context) -> set[str]:
    """The options the user typed (or set in the environment), not Typer's defaults."""
    from typer._click.core import ParameterSource

    typed = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT}
    return {
        p.name
        for p in ctx.command.params
        if p.name is not None and ctx.get_parameter_source(p.name) in typed
    } - {"sources", "spec_file", "print_spec", "dry_run", "no_catalog", "as_json"}


def _list(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def _pairs(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ValidationError(f"bad --coords term {part!r}; write PRODUCT_VAR=GRID_VAR")
        out[key.strip()] = value.strip()
    return out
