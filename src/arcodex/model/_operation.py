"""Operations: catalogued actions and their outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from arcodex.model._ids import new_id
from arcodex.model._record import utcnow

__all__ = ["Operation", "OperationError", "OperationStatus"]

OperationStatus = Literal["running", "succeeded", "failed", "rolled_back"]


class OperationError(BaseModel):
    """Why an operation failed (type and message only: never secrets, never locals)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    message: str


class Operation(BaseModel):
    """A catalogued action: add, update, delete, convert, ingest …"""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    action: str
    status: OperationStatus = "running"
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    user: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    error: OperationError | None = None
