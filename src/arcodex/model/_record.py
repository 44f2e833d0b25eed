"""Records, artifacts, locators and lineage: what the catalog holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from arcodex.model._ids import ID_PATTERN, ID_RE, new_id
from arcodex.model._values import check_metadata, looks_like_date, parse_iso_period

__all__ = [
    "ARTIFACT_STATUSES",
    "RECORD_STATUSES",
    "TRUSTED",
    "Artifact",
    "ArtifactStatus",
    "BundleMember",
    "ExternalUri",
    "FsspecUrl",
    "Inline",
    "Lineage",
    "LocalPath",
    "Locator",
    "PlannedPath",
    "Record",
    "RecordStatus",
    "utcnow",
]

RecordStatus = Literal["active", "planned", "failed", "deprecated", "deleted"]
RECORD_STATUSES: tuple[str, ...] = ("active", "planned", "failed", "deprecated", "deleted")
ArtifactStatus = Literal["planned", "available", "missing", "failed", "external"]
ARTIFACT_STATUSES: tuple[str, ...] = ("planned", "available", "missing", "failed", "external")

#: Validation context key for documents arcodex wrote itself (already checked
#: when they were stored), so reading them back skips the metadata walk.
TRUSTED = "arcodex_trusted"

_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False)


class LocalPath(_Model):
    """A file or directory on a local or shared filesystem.

    A relative ``path`` is relative to the catalog root (managed storage), so
    that a catalog can be moved as a whole.
    """

    type: Literal["local_path"] = "local_path"
    path: str = Field(min_length=1)


class FsspecUrl(_Model):
    """An object reachable through fsspec; credentials come from the named storage profile."""

    type: Literal["fsspec_url"] = "fsspec_url"
    url: str = Field(min_length=1)
    profile: str | None = None


class ExternalUri(_Model):
    """A URI arcodex does not manage (DOI, landing page, remote file): never downloaded."""

    type: Literal["external_uri"] = "external_uri"
    uri: str = Field(min_length=1)


class PlannedPath(_Model):
    """Where an artifact will be written, before it is."""

    type: Literal["planned_path"] = "planned_path"
    path: str = Field(min_length=1)
    profile: str | None = None


class Inline(_Model):
    """A small payload kept in the record itself."""

    type: Literal["inline"] = "inline"
    data: str
    encoding: Literal["utf-8", "base64"] = "utf-8"


class BundleMember(_Model):
    """A member of an archive or bundle held by another artifact or record."""

    type: Literal["bundle_member"] = "bundle_member"
    bundle: str = Field(min_length=1, description="id of the record holding the bundle")
    member: str = Field(min_length=1, description="path of the member inside the bundle")


Locator = Annotated[
    LocalPath | FsspecUrl | ExternalUri | PlannedPath | Inline | BundleMember,
    Field(discriminator="type"),
]


class Artifact(_Model):
    """A physical or virtual object of a record."""

    id: str = Field(default_factory=new_id, pattern=ID_PATTERN)
    role: str = Field(default="primary", pattern=_NAME_PATTERN)
    locator: Locator
    media_type: str | None = None
    format: str | None = None
    size_bytes: int | None = Field(default=None, ge=0, lt=2**63)
    hashes: dict[str, str] = Field(default_factory=dict)
    status: ArtifactStatus = "available"
    managed: bool = Field(
        default=False, description="arcodex wrote this object and may delete it on purge"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("metadata")
    @classmethod
    def _json_metadata(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.context and info.context.get(TRUSTED):
            return value
        result: dict[str, Any] = check_metadata(value, "artifact.metadata")
        return result


class Lineage(_Model):
    """Where a record came from: the operation that made it and its source records."""

    operation_id: str | None = None
    sources: list[str] = Field(default_factory=list)
    relation: str = "derived_from"


def _starts_before_end(start: tuple[datetime, datetime], end: tuple[datetime, datetime]) -> bool:
    """Whether a start period begins no later than the last instant of an end period."""
    first, after = end
    return start[0] <= first if first == after else start[0] < after


def _check_extent(metadata: dict[str, Any]) -> None:
    """The well-known extent keys (STAC names) must be usable by spatial and time search."""
    bbox = metadata.get("bbox")
    if bbox is not None:
        ok = (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
        )
        if (
            not ok
            or not (-90 <= bbox[1] <= bbox[3] <= 90)
            or not all(-360 <= v <= 360 for v in bbox[::2])
        ):
            raise ValueError(
                f"metadata.bbox {bbox!r} must be [west, south, east, north] in degrees"
                " with -90 <= south <= north <= 90"
            )
    spans = {}
    for key in ("datetime", "start_datetime", "end_datetime"):
        value = metadata.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not looks_like_date(value):
            raise ValueError(
                f"metadata.{key} {value!r} must be an ISO 8601 date like 2020-01-31T00:00:00Z"
            )
        try:
            spans[key] = parse_iso_period(value)
        except ValueError as exc:
            raise ValueError(f"metadata.{key}: {exc}") from None
    if (
        "start_datetime" in spans
        and "end_datetime" in spans
        and not _starts_before_end(spans["start_datetime"], spans["end_datetime"])
    ):
        raise ValueError("metadata.start_datetime is after metadata.end_datetime")


def _check_id(value: str) -> str:
    if not ID_RE.match(value):
        raise ValueError(
            f"id {value!r} must start with a letter or digit and use only letters, digits "
            "and . _ : @ + - (at most 200 characters)"
        )
    return value


class Record(_Model):
    """A logical catalog entry."""

    id: str = Field(default_factory=new_id)
    kind: str = Field(default="dataset", pattern=_NAME_PATTERN)
    title: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    artifacts: list[Artifact] = Field(default_factory=list)
    status: RecordStatus = "active"
    version: int = Field(default=1, ge=1, lt=2**63)
    lineage: list[Lineage] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    created_by: str | None = None
    updated_by: str | None = None
    schema_name: str | None = None
    schema_version: str | None = None

    _valid_id = field_validator("id")(_check_id)

    @field_validator("metadata")
    @classmethod
    def _json_metadata(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.context and info.context.get(TRUSTED):
            return value
        result: dict[str, Any] = check_metadata(value)
        _check_extent(result)
        return result

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for tag in value:
            tag = tag.strip()
            if not tag or any(c.isspace() for c in tag) or "," in tag:
                raise ValueError(f"tag {tag!r} must be a non-empty word without spaces or commas")
            seen.setdefault(tag, None)
        return list(seen)

    def artifact(self, role: str = "primary") -> Artifact:
        """The first artifact with ``role``; LookupError if there is none."""
        for artifact in self.artifacts:
            if artifact.role == role:
                return artifact
        raise LookupError(f"record {self.id} has no {role!r} artifact")

    def _repr_html_(self) -> str:
        from arcodex.model._record_html import record_html

        return record_html(self)
