"""The top-level API is what we mean to publish, and `import arcodex` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import arcodex


def test_top_level_all() -> None:
    assert set(arcodex.__all__) == {
        "ArcodexError",
        "Catalog",
        "ConflictError",
        "NotFoundError",
        "Query",
        "Record",
        "ValidationError",
        "__version__",
        "open_catalog",
    }
    for name in arcodex.__all__:
        assert getattr(arcodex, name) is not None


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        arcodex.no_such_thing  # noqa: B018


def test_import_is_light() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import arcodex; dt = time.perf_counter() - t; "
        "heavy = [m for m in ('xarray', 'dask', 'fastapi', 'numpy', 'pydantic') if m in sys.modules]; "
        "print(dt, ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.split()[0], out.stdout.split()[1:] or [""]
    assert heavy == [""], f"import arcodex pulled in {heavy}"
    assert float(seconds) < 0.5


def test_catalog_import_does_not_pull_xarray() -> None:
    code = (
        "import sys; import arcodex.catalog, arcodex.cli; "
        "print(','.join(m for m in ('xarray', 'dask', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
