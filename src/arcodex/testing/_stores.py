"""The contract every data store passes, as test classes to subclass (like zarr's ``StoreTests``).

A store's test module subclasses :class:`WritableStoreTests` or
:class:`ReadOnlyStoreTests` once per kind and gives its ``store`` fixture (and,
for a read-only store, how data gets there)::

    from arcodex.testing import WritableStoreTests

    class TestFileStore(WritableStoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            with new_store("file", root=str(tmp_path)) as store:
                yield store

        def remove_chunks(self, store, data_id, variable):
            remove_zarr_chunks(store.fs, store._path(data_id), variable)

Every test works on :func:`sample_dataset`, put into the store by :meth:`put`.
``remove_chunks`` deletes a data variable's chunks, which proves that
``describe_data`` reads none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from arcodex.errors import ConflictError, NotFoundError, ValidationError

__all__ = [
    "SAMPLE_TITLE",
    "ReadOnlyStoreTests",
    "StoreTests",
    "WritableStoreTests",
    "remove_zarr_chunks",
    "sample_dataset",
]

SAMPLE_TITLE = "arcodex store sample"
MISSING = "no-such-dataset.zarr"


def sample_dataset() -> Any:
    """Four days of two variables on a 3 x 4 degree grid, with CF attributes."""
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    import xarray as xr

    rng = np.random.default_rng(12)
    time = pd.date_range("2000-01-01", periods=4, freq="D")
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {
            "tas": (
                dims,
                (rng.random((4, 3, 4)) * 30 + 260).astype("float32"),
                {"units": "K", "long_name": "near-surface air temperature"},
            ),
            "pr": (dims, rng.random((4, 3, 4)), {"units": "kg m-2 s-1"}),
        },
        coords={
            "time": ("time", time, {"standard_name": "time", "axis": "T"}),
            "lat": ("lat", [10.0, 20.0, 30.0], {"units": "degrees_north", "axis": "Y"}),
            "lon": ("lon", [0.0, 10.0, 20.0, 30.0], {"units": "degrees_east", "axis": "X"}),
        },
        attrs={"title": SAMPLE_TITLE, "institution": "arcodex tests"},
    )


def remove_zarr_chunks(fs: Any, path: str, variable: str) -> int:
    """Delete the chunks (not the metadata) of ``variable`` in the Zarr store at ``path``."""
    removed = 0
    for name in fs.find(f"{path.rstrip('/')}/{variable}"):
        if name.rsplit("/", 1)[-1] not in ("zarr.json", ".zarray", ".zattrs"):
            fs.rm(name)
            removed += 1
    assert removed, f"no chunk of {variable} under {path}"
    return removed


class StoreTests:
    """What every store does: list, describe (reading no data), search, open, refuse bad input."""

    #: The id :meth:`put` stores the sample under.
    name: ClassVar[str] = "sample.zarr"

    @pytest.fixture
    def store(self) -> Any:
        raise NotImplementedError("give the store fixture")

    def put(self, store: Any, dataset: Any, name: str) -> str:
        """Put ``dataset`` into ``store`` as ``name``; returns its data id."""
        data_id: str = store.write_data(dataset, name)
        return data_id

    def remove_chunks(self, store: Any, data_id: str, variable: str) -> None:
        """Delete the chunks of ``variable`` of ``data_id`` (its metadata stays)."""
        raise NotImplementedError

    @pytest.fixture
    def stored(self, store: Any) -> str:
        return self.put(store, sample_dataset(), self.name)

    # -- kinds and schemas -----------------------------------------------------------------

    def test_kind_is_listed_with_a_schema(self, store: Any) -> None:
        from arcodex.stores import list_store_kinds, new_store, store_params_schema

        assert store.kind in list_store_kinds()
        schema = store_params_schema(store.kind)
        assert schema["type"] == "object" and schema["properties"]
        with pytest.raises(ValidationError, match="'no_such_param'"):
            new_store(store.kind, **store.config.model_dump(), no_such_param=1)

    def test_every_method_has_a_params_schema(self, store: Any) -> None:
        from arcodex.stores import OpenParams

        for method in ("list_data_ids", "describe_data", "search_data", "open_data"):
            schema = store.params_schema(method)
            assert schema["type"] == "object"
            assert schema.get("additionalProperties") is False
        opened = store.params_schema("open_data")["properties"]
        assert set(OpenParams.model_fields) <= set(opened)
        with pytest.raises(ValidationError, match="no_such_method"):
            store.params_schema("no_such_method")

    # -- listing -------------------------------------------------------------------------

    def test_lists_what_it_holds(self, store: Any, stored: str) -> None:
        assert stored in store.list_data_ids()
        assert store.has_data(stored)
        assert not store.has_data(MISSING)

    def test_lists_attributes_on_request(self, store: Any, stored: str) -> None:
        pairs = dict(store.list_data_ids(include_attrs=["title", "nothing"]))
        assert pairs[stored] == {"title": SAMPLE_TITLE, "nothing": None}

    # -- describing ------------------------------------------------------------------------

    def test_describes_the_dataset(self, store: Any, stored: str) -> None:
        from arcodex.stores import DatasetDescriptor

        described = store.describe_data(stored)
        assert described.data_id == stored and described.store == store.kind
        assert described.dims == {"time": 4, "lat": 3, "lon": 4}
        assert set(described.data_vars) == {"tas", "pr"}
        assert {"time", "lat", "lon"} <= set(described.coords)
        tas = described.data_vars["tas"]
        assert (tas.dtype, tas.units, tas.dims, tas.shape) == (
            "float32",
            "K",
            ("time", "lat", "lon"),
            (4, 3, 4),
        )
        assert tas.long_name == "near-surface air temperature"
        assert described.data_vars["pr"].dtype == "float64"
        assert described.bbox == pytest.approx((0.0, 10.0, 30.0, 30.0))
        assert described.time_range is not None
        assert described.time_range[0].startswith("2000-01-01")
        assert described.time_range[1].startswith("2000-01-04")
        assert described.time_period == "P1D"
        assert described.spatial_res == pytest.approx(10.0)
        assert described.crs == "EPSG:4326"
        assert described.attrs["title"] == SAMPLE_TITLE
        assert described.levels == []
        assert DatasetDescriptor.from_dict(described.to_dict()) == described

    def test_describe_reads_no_data_chunk(self, store: Any, stored: str) -> None:
        import numpy as np

        before = store.describe_data(stored)
        self.remove_chunks(store, stored, "tas")
        assert store.describe_data(stored) == before
        # The chunks are really gone: what opens now is fill values, not the data.
        with store.open_data(stored) as ds:
            values = np.asarray(ds["tas"].values)
        assert not np.array_equal(values, sample_dataset()["tas"].values)

    def test_missing_data_is_not_found(self, store: Any) -> None:
        with pytest.raises(NotFoundError):
            store.describe_data(MISSING)
        with pytest.raises(NotFoundError):
            store.open_data(MISSING)

    # -- opening -----------------------------------------------------------------------------

    def test_opens_lazily_with_the_values(self, store: Any, stored: str) -> None:
        import dask.array
        import numpy as np

        want = sample_dataset()
        with store.open_data(stored) as ds:
            assert isinstance(ds["tas"].data, dask.array.Array)
            assert ds["tas"].dtype == np.float32
            np.testing.assert_array_equal(ds["tas"].values, want["tas"].values)
            np.testing.assert_allclose(ds["pr"].values, want["pr"].values)
            assert ds["tas"].attrs["units"] == "K"

    def test_opens_a_subset(self, store: Any, stored: str) -> None:
        with store.open_data(
            stored, variables=["tas"], time=("2000-01-02", "2000-01-03"), bbox=(5, 15, 25, 25)
        ) as ds:
            assert set(ds.data_vars) == {"tas"}
            assert ds.sizes["time"] == 2
            assert list(ds["lon"].values) == [10.0, 20.0]
            assert list(ds["lat"].values) == [20.0]

    def test_refuses_bad_parameters_naming_them(self, store: Any, stored: str) -> None:
        cases: list[tuple[str, tuple[str, ...], dict[str, Any], str]] = [
            ("open_data", (stored,), {"no_such": 1}, "'no_such'"),
            ("open_data", (stored,), {"bbox": [1, 2]}, "'bbox'"),
            ("open_data", (stored,), {"level": -1}, "'level'"),
            ("list_data_ids", (), {"include_attrs": 3}, "'include_attrs'"),
            ("search_data", (), {"limit": 0}, "'limit'"),
            ("describe_data", (stored,), {"deep": True}, "'deep'"),
        ]
        for method, args, params, named in cases:
            with pytest.raises(ValidationError, match=named) as caught:
                getattr(store, method)(*args, **params)
            assert "\n" not in str(caught.value)

    # -- searching ---------------------------------------------------------------------------

    def test_searches_by_time_bbox_variables_and_text(self, store: Any, stored: str) -> None:
        def found(**params: Any) -> bool:
            return stored in [d.data_id for d in store.search_data(**params)]

        assert found()
        assert found(variables=["tas", "pr"]) and not found(variables=["tas", "nope"])
        assert found(time="2000-01-02/2000-01-03") and found(time=("1999-12-01", None))
        assert not found(time="2001-01-01/2001-02-01")
        assert found(bbox=(5, 15, 25, 25)) and not found(bbox=(100, -50, 120, -40))
        assert found(text="store sample") and not found(text="zzyzx")
        assert len(store.search_data(limit=1)) == 1


class WritableStoreTests(StoreTests):
    """A store that writes: refuses to overwrite, replaces safely, deletes only its own."""

    def put_foreign(self, store: Any, dataset: Any) -> str:
        """Put ``dataset`` where the store sees it, written by something else; returns its id."""
        raise NotImplementedError

    def test_writes_then_refuses_to_overwrite(self, store: Any, stored: str) -> None:
        import numpy as np

        changed = sample_dataset()
        changed["tas"] = changed["tas"] + 1
        with pytest.raises(ConflictError, match="replace"):
            store.write_data(changed, self.name)
        with store.open_data(stored) as ds:
            np.testing.assert_array_equal(ds["tas"].values, sample_dataset()["tas"].values)

    def test_replaces_what_it_wrote(self, store: Any, stored: str) -> None:
        import numpy as np

        changed = sample_dataset()
        changed["tas"] = changed["tas"] + 1
        data_id = store.write_data(changed, self.name, replace=True)
        with store.open_data(data_id) as ds:
            np.testing.assert_array_equal(ds["tas"].values, changed["tas"].values)
        assert len(store.list_data_ids()) == 1, store.list_data_ids()  # nothing left beside

    def test_deletes_what_it_wrote(self, store: Any, stored: str) -> None:
        store.delete_data(stored)
        assert not store.has_data(stored)
        assert stored not in store.list_data_ids()
        with pytest.raises(NotFoundError):
            store.delete_data(stored)

    def test_never_deletes_what_it_did_not_write(self, store: Any) -> None:
        foreign = self.put_foreign(store, sample_dataset())
        assert store.has_data(foreign)
        with pytest.raises(ConflictError, match="did not write"):
            store.delete_data(foreign)
        assert store.has_data(foreign)
        with store.open_data(foreign) as ds:
            assert ds.sizes["time"] == 4


class ReadOnlyStoreTests(StoreTests):
    """A store that only reads: writing and deleting are refused, in one line."""

    def test_refuses_to_write_or_delete(self, store: Any, stored: str, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="read-only"):
            store.write_data(sample_dataset(), "other.zarr")
        with pytest.raises(ValidationError, match="read-only"):
            store.delete_data(stored)
        with pytest.raises(ValidationError, match="write_data"):
            store.params_schema("write_data")
        assert store.has_data(stored)
