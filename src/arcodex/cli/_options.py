"""Options several commands share, declared once so that they read and behave the same
(``add`` and ``ingest-files`` take every option of how a file becomes a record)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

__all__ = [
    "IdsOpt",
    "InPlaceOpt",
    "JsonOpt",
    "KindOpt",
    "MetaOpt",
    "NoExtractOpt",
    "PolicyOpt",
    "ProfileOpt",
    "RequireMetadataOpt",
    "SchemaOpt",
    "TagOpt",
]

Policy = Literal["off", "warn", "strict"]

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON (stable shape) instead of a table.")
]
IdsOpt = Annotated[bool, typer.Option("--ids", help="Print only record ids, one per line.")]
SchemaOpt = Annotated[
    str | None,
    typer.Option("--schema", help="Validate the metadata with this schema (NAME or NAME@VERSION)."),
]
PolicyOpt = Annotated[
    Policy | None,
    typer.Option(
        "--schema-policy",
        help="What a schema mismatch does: off, warn or strict; default: the catalog's "
        "schema_policy.",
    ),
]
MetaOpt = Annotated[
    list[str] | None,
    typer.Option("--meta", "-m", metavar="KEY=VALUE", help="Metadata; dotted keys nest (a.b=1)."),
]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag (repeatable).")]
KindOpt = Annotated[str | None, typer.Option(help="Record kind (default: guessed).")]
InPlaceOpt = Annotated[
    bool,
    typer.Option("--in-place", help="Register files where they are instead of copying them."),
]
NoExtractOpt = Annotated[
    bool, typer.Option("--no-extract", help="Do not read metadata from the files.")
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(help="Storage profile to copy into; default: the catalog's default_profile."),
]
RequireMetadataOpt = Annotated[
    bool,
    typer.Option(
        "--require-metadata", help="Fail if any extractor cannot read a file (default: warn)."
    ),
]
