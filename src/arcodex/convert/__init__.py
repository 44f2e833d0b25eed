"""ARCO conversion: NetCDF/HDF5 archives to Zarr, Icechunk and virtual references.

Needs the ``convert`` extra (xarray, zarr, icechunk, virtualizarr, dask),
imported when a conversion runs::

    from arcodex.convert import convert, update, check

    result = convert("archive/*.nc", to="zarr", dest="tas.zarr")
    convert(ConvertSpec(sources="archive/*.nc", dest="tas.zarr"))  # the same, as a spec
    update("tas.zarr", "archive/new/*.nc")
    check("tas.zarr").status  # 'pass'

An ``xarray.Dataset`` (in memory or Dask-backed) is a source too
(``convert(ds, ...)``, ``update("tas.zarr", ds)``), and ``pyramid=N`` writes N
resolution levels (``open_product("tas.zarr", level=k)``).
"""

from __future__ import annotations

from arcodex.convert._api import ConvertResult, check, convert, open_product, update
from arcodex.convert._attrs import AttrFix, AttrFixes
from arcodex.convert._check import CheckReport
from arcodex.convert._chunking import derive_chunks, parse_chunks
from arcodex.convert._plan import Plan
from arcodex.convert._product import FORMATS, Product
from arcodex.convert._spec import ConvertSpec
from arcodex.convert._write import CODECS

__all__ = [
    "CODECS",
    "FORMATS",
    "AttrFix",
    "AttrFixes",
    "CheckReport",
    "ConvertResult",
    "ConvertSpec",
    "Plan",
    "Product",
    "check",
    "convert",
    "derive_chunks",
    "open_product",
    "parse_chunks",
    "update",
]
