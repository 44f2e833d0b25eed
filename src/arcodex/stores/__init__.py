"""One API to list, describe, search, open and write datasets wherever they are (xcube's
data stores, smaller)::

    from arcodex.stores import new_store

    store = new_store("file", root="data")
    store.list_data_ids()                       # ['tas.zarr', 'obs/ch4.nc']
    store.describe_data("tas.zarr").time_range  # from metadata: no data array is read
    ds = store.open_data("tas.zarr", variables=["tas"], time=("2000-01", "2000-02"))

Built-in kinds: ``catalog``, ``file``, ``s3``, ``memory``, ``https``,
``reference`` and ``stac``; plugins add more. Every method's parameters have a
JSON Schema (``store.params_schema("open_data")``, :func:`store_params_schema`
for a kind's own) and bad parameters are refused with the parameter named.
Opening needs the ``convert`` extra (xarray, zarr, fsspec), imported when used.
"""

from __future__ import annotations

from arcodex.stores._base import (
    DataStore,
    DeleteParams,
    DescribeParams,
    ListParams,
    OpenParams,
    SearchParams,
    WritableDataStore,
    WriteParams,
)
from arcodex.stores._descriptor import DatasetDescriptor, VariableDescriptor
from arcodex.stores._registry import list_store_kinds, new_store, store_params_schema

__all__ = [
    "DataStore",
    "DatasetDescriptor",
    "DeleteParams",
    "DescribeParams",
    "ListParams",
    "OpenParams",
    "SearchParams",
    "VariableDescriptor",
    "WritableDataStore",
    "WriteParams",
    "list_store_kinds",
    "new_store",
    "store_params_schema",
]
