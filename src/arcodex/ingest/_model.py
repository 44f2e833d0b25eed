"""Dataset templates and extents: what a site can ingest, and over which areas.

Both are YAML documents (one or many per file) in directories the catalog's
config names (``ingest: {templates: DIR, extents: DIR}``), plus templates that
plugins register. A template says where a dataset's periods come from (a
provider and its parameters), how often they come (the period type and the
availability), how to shape them (transforms) and where they go (a target and
its chunking); an extent is a named area.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arcodex.ingest._periods import PeriodType

__all__ = [
    "Availability",
    "Display",
    "Extent",
    "ProviderRef",
    "Target",
    "Template",
    "Transforms",
    "UnitConversion",
    "VariableSpec",
]

SyncKind = Literal["temporal", "release", "static"]
_ID = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Extent(_Strict):
    """A named area: a bbox (west, south, east, north; west > east crosses 180°) and,
    optionally, a GeoJSON geometry inside it."""

    id: str = Field(pattern=_ID)
    name: str = ""
    description: str = ""
    bbox: tuple[float, float, float, float]
    geometry: dict[str, Any] | None = None

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        west, south, east, north = value
        if not (-90 <= south <= north <= 90):
            raise ValueError("south and north must be latitudes with south <= north")
        if not (-180 <= west <= 360 and -180 <= east <= 360):
            raise ValueError("west and east must be longitudes in -180..360")
        return value


class VariableSpec(_Strict):
    """A variable of the dataset: its units once transformed, and its description."""

    units: str = ""
    long_name: str = ""


class ProviderRef(_Strict):
    """Which provider fetches the periods, and its parameters (its own to validate)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Availability(_Strict):
    """When a period can be fetched: ``lag`` after its end (``5D``, ``36h``: a pandas
    offset), and never after ``cutoff`` (a date) if given."""

    lag: str = "0D"
    cutoff: str | None = None


class UnitConversion(_Strict):
    """``value * scale + offset``, then the variable's units become ``to``."""

    to: str
    scale: float = 1.0
    offset: float = 0.0


class Transforms(_Strict):
    """What is done to each fetched period, in this order."""

    variables: list[str] | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    units: dict[str, UnitConversion] = Field(default_factory=dict)
    #: Attributes to set: ``{"": {...}}`` for the dataset's, ``{VAR: {...}}`` for a variable's.
    attributes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Target(_Strict):
    """Where the dataset is written: an Icechunk repository by default."""

    format: Literal["icechunk", "zarr"] = "icechunk"
    dest: str | None = None
    profile: str | None = None
    chunks: dict[str, int] | None = None


class Display(_Strict):
    """Hints for maps and quicklooks."""

    colormap: str | None = None
    range: tuple[float, float] | None = None


class Template(_Strict):
    """A dataset that can be ingested for an extent and a period range, and synced."""

    id: str = Field(pattern=_ID)
    name: str = ""
    description: str = ""
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    period: PeriodType
    provider: ProviderRef
    sync: SyncKind = "temporal"
    availability: Availability = Field(default_factory=Availability)
    transforms: Transforms = Field(default_factory=Transforms)
    target: Target = Field(default_factory=Target)
    display: Display = Field(default_factory=Display)

    @model_validator(mode="after")
    def _renamed_variables(self) -> Template:
        unknown = (
            set(self.transforms.units) - set(self.variables) - set(self.transforms.rename.values())
        )
        if self.variables and unknown:
            raise ValueError(
                f"transforms.units names {sorted(unknown)}, not variables of the template"
            )
        return self
