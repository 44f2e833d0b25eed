"""Record schemas: register them, list them, check records against them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from arcodex.catalog._metadata import pydantic_message
from arcodex.catalog._schemas import SchemaResult, schema_parts
from arcodex.catalog._writing import CatalogWriter
from arcodex.errors import ValidationError
from arcodex.model import Query, Record

__all__ = ["Validation"]


class Validation(CatalogWriter):
    """The schema part of a catalog (applying a policy on write is the writer's)."""

    def register_schema(
        self, ref: str, schema: type[BaseModel] | dict[str, Any] | str | os.PathLike[str]
    ) -> str:
        """Register a JSON Schema (dict or file, kept with the catalog) or a Pydantic model
        (this process only) under ``name@version``; returns the reference."""
        return self.schemas.register(
            ref, schema if not isinstance(schema, os.PathLike) else str(schema)
        )

    def get_schema(self, ref: str) -> dict[str, Any]:
        """The JSON Schema registered as ``ref`` (``name@version``, or ``name`` for its
        latest version)."""
        name, version = schema_parts(ref)
        return self.schemas.document(name, version)

    def list_schemas(self) -> list[str]:
        """Every registered ``name@version``."""
        return self.schemas.names()

    def validate(
        self,
        id_or_prefix: str | None = None,
        *,
        all: bool = False,
        document: Mapping[str, Any] | None = None,
        schema: str | None = None,
    ) -> list[SchemaResult]:
        """Check records against their schemas: one record, every record (``all``), or a
        record document that is not in the catalog. Nothing is changed."""
        if document is not None:
            try:
                record = Record.model_validate(dict(document))
            except ValueError as exc:
                return [SchemaResult(False, schema, [pydantic_message(exc)])]
            targets = [record]
        elif all:
            targets = self.backend.search(Query(limit=None)).records
        elif id_or_prefix:
            targets = [self.get(id_or_prefix)]
        else:
            raise ValidationError("say what to validate: a record id, all=True, or a document")
        return [self._check_schema(r, schema) for r in targets]
