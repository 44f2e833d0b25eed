"""An arcodex plugin that registers one of each kind (installed by arcodex's tests).

- extractor ``example``: ``*.station`` files (``key = value`` lines) -> ``metadata.example``
- schema ``example-station@1``: a Pydantic model of that metadata
- hook ``example.stamp`` after ``after_metadata_extract``: adds ``example_hooked``
- step ``example-stamp`` and pipeline ``example-pipeline``
- store kind ``example``: the variables of a tiny dataset, made in memory
- source kind ``example://DIR``: the ``*.nc`` files in DIR
- storage profile kind ``example-memory``: fsspec's memory filesystem
- command group ``example``: ``arcodex example hello NAME``
- a STAC formatter: ``example:station`` in every Item's properties
- provider ``example``: one constant daily field, made in memory
- dataset template ``example-daily``: the example provider's field, daily
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__version__ = "0.3.1"
# A process that imports the plugin says so in this file (the tests check who imports it).
if os.environ.get("ARCODEX_EXAMPLE_PLUGIN_MARK"):
    with open(os.environ["ARCODEX_EXAMPLE_PLUGIN_MARK"], "a", encoding="utf-8") as _mark:
        _mark.write("imported\n")
#: Every call of a step, a hook, a formatter or a resolver is noted here (for the tests).
CALLS: list[str] = []


class StationExtractor:
    """Reads ``*.station`` files: one ``key = value`` per line."""

    name = "example"

    def matches(self, path: Path) -> bool:
        return path.suffix == ".station"

    def extract(self, path: Path, into: Any) -> None:
        fields: dict[str, Any] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                text = value.strip()
                fields[key.strip()] = int(text) if text.isdigit() else text
        into.metadata["example"] = fields
        into.kind = into.kind or "document"


def _station_schema() -> type:
    from pydantic import BaseModel, ConfigDict

    class Station(BaseModel):
        model_config = ConfigDict(extra="allow")

        example: dict[str, str | int]
        example_hooked: bool

    return Station


def stamp_hook(context: Any) -> Any:
    """After extraction: note that the hook saw the file."""
    from arcodex.catalog import HookResult

    CALLS.append(f"hook:{context.point}")
    return HookResult(metadata={"example_hooked": True})


def stamp_step(ctx: Any) -> None:
    """A step that changes nothing: it counts its runs in the pipeline's state."""
    CALLS.append("step:example-stamp")
    ctx.state["example_stamps"] = ctx.state.get("example_stamps", 0) + 1


class ExampleStore:
    """A read-only store (``arcodex.stores.DataStore``) of one tiny dataset, ``example.nc``."""

    kind = "example"

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __enter__(self) -> ExampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def params_schema(self, method: str) -> dict[str, Any]:
        return {"type": "object"}

    def list_data_ids(self, **params: Any) -> list[Any]:
        return ["example.nc"]

    def has_data(self, data_id: str) -> bool:
        return data_id == "example.nc"

    def _known(self, data_id: str) -> None:
        if not self.has_data(data_id):
            from arcodex.errors import NotFoundError

            raise NotFoundError(f"the example store has no {data_id!r}; it has example.nc")

    def describe_data(self, data_id: str, **params: Any) -> Any:
        from arcodex.stores import DatasetDescriptor

        self._known(data_id)
        return DatasetDescriptor(
            data_id=data_id, store=self.kind, dims={"time": 3}, attrs={"source": "example"}
        )

    def search_data(self, **params: Any) -> list[Any]:
        return [self.describe_data("example.nc")]

    def open_data(self, data_id: str, **params: Any) -> Any:
        import numpy as np
        import xarray as xr

        self._known(data_id)
        CALLS.append(f"store:open:{data_id}")
        return xr.Dataset(
            {"temperature": (("time",), np.array([271.5, 272.0, 273.25]), {"units": "K"})},
            coords={"time": np.arange(3)},
            attrs={"source": "arcodex-example-plugin"},
        )

    def close(self) -> None:
        pass


def resolve_example(url: str, storage_options: dict[str, Any]) -> list[str]:
    """``example://DIR``: the NetCDF files in DIR, sorted."""
    CALLS.append(f"source:{url}")
    directory = Path(url.split("://", 1)[1])
    return [str(p) for p in sorted(directory.glob("*.nc"))]


def memory_storage(name: str, settings: dict[str, Any], catalog_root: Path) -> Any:
    """A profile on fsspec's memory filesystem, under ``settings['root']``."""
    import fsspec

    from arcodex.storage import FsspecStore

    CALLS.append(f"profile:{name}")
    root = str(settings.get("root") or "example")
    return FsspecStore(fsspec.filesystem("memory"), "memory", root, name)


def format_item(record: Any, item: dict[str, Any]) -> dict[str, Any]:
    """Every Item says which station it came from (or ``none``)."""
    station = record.metadata.get("example", {}).get("station", "none")
    item["properties"]["example:station"] = station
    return item


class ExampleProvider:
    """An ingestion provider (``arcodex.ingest.Provider``) of one constant field per day."""

    def __init__(self, catalog: Any = None) -> None:
        self.catalog = catalog

    def probe(self, extent: Any, params: dict[str, Any]) -> Any:
        from arcodex.ingest import Grid

        return Grid(dims={"lat": 2, "lon": 2}, coords={}, dtypes={"t2m": "float32"})

    def periods(self, start: Any, end: Any, params: dict[str, Any]) -> list[Any]:
        import pandas as pd

        return list(pd.period_range(start, end, freq=start.freq))

    def fetch_period(self, period: Any, extent: Any, params: dict[str, Any]) -> Any:
        import numpy as np
        import xarray as xr

        CALLS.append(f"provider:{period}")
        value = float(params.get("value", 273.15))
        return xr.Dataset(
            {"t2m": (("time", "lat", "lon"), np.full((1, 2, 2), value, "f4"), {"units": "K"})},
            coords={"time": [period.start_time], "lat": [0.0, 1.0], "lon": [0.0, 1.0]},
        )


EXAMPLE_TEMPLATE = {
    "id": "example-daily",
    "name": "Example daily field",
    "period": "daily",
    "variables": {"t2m": {"units": "K"}},
    "provider": {"name": "example", "params": {"value": 280.0}},
}


def _cli() -> Any:
    import typer

    app = typer.Typer(help="The example plugin's commands.", no_args_is_help=True)

    @app.command("hello")
    def hello(name: str) -> None:
        """Greet NAME."""
        typer.echo(f"hello {name}, from the example plugin {__version__}")

    @app.command("version")
    def version() -> None:
        """Print the plugin's version."""
        typer.echo(__version__)

    return app


def register(registrar: Any) -> None:
    """The entry point: one of each kind."""
    CALLS.append("register")
    registrar.add_extractor(StationExtractor())
    registrar.add_schema("example-station", "1", _station_schema())
    registrar.add_hook("after_metadata_extract", stamp_hook, name="example.stamp")
    registrar.add_step("example-stamp", stamp_step, changes=False, doc="note that it ran")
    registrar.add_pipeline("example-pipeline", ["example-stamp"])
    registrar.add_store("example", ExampleStore)
    registrar.add_source_kind("example", resolve_example)
    registrar.add_profile_kind("example-memory", memory_storage)
    registrar.add_cli("example", _cli())
    registrar.add_stac_formatter(format_item)
    registrar.add_provider("example", ExampleProvider)
    registrar.add_template(EXAMPLE_TEMPLATE)
