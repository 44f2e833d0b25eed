"""Test helpers for arcodex and for packages that extend it.

:class:`BackendContract` is the shared contract every catalog backend passes
(subclass it once per backend), :class:`WritableStoreTests` and
:class:`ReadOnlyStoreTests` the one every data store passes, :class:`ProviderTests` the one
every ingestion provider passes; :func:`local_slurm` a real
one-node SLURM cluster for tests of batch clusters; :mod:`arcodex.testing.strategies` holds
Hypothesis strategies for the models. Both need the ``test`` extra (pytest,
hypothesis), so they load lazily: the pytest plugin in
:mod:`arcodex.testing.plugin` imports this package in every pytest run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "OPT_OUT",
    "PG_OPT_OUT",
    "S3_KEY_ID",
    "S3_SECRET",
    "SAMPLE_TITLE",
    "BackendContract",
    "LocalPostgres",
    "LocalSlurm",
    "PostgresUnavailable",
    "ProviderCase",
    "ProviderTests",
    "ReadOnlyStoreTests",
    "SlurmUnavailable",
    "StoreTests",
    "WritableStoreTests",
    "assert_same_values",
    "clear_backend",
    "full_record",
    "http_directory",
    "http_server",
    "local_postgres",
    "local_slurm",
    "no_aws_credentials",
    "publish_all",
    "remove_zarr_chunks",
    "s3_server",
    "sample_dataset",
    "sample_records",
    "search_ids",
    "serve_catalog",
    "serve_workers",
    "sources_dataset",
]

if TYPE_CHECKING:
    from arcodex.testing._contract import BackendContract
    from arcodex.testing._datasets import (
        S3_KEY_ID,
        S3_SECRET,
        assert_same_values,
        http_directory,
        http_server,
        no_aws_credentials,
        publish_all,
        s3_server,
        serve_catalog,
        serve_workers,
        sources_dataset,
    )
    from arcodex.testing._postgres import (
        PG_OPT_OUT,
        LocalPostgres,
        PostgresUnavailable,
        local_postgres,
    )
    from arcodex.testing._providers import ProviderCase, ProviderTests
    from arcodex.testing._slurm import OPT_OUT, LocalSlurm, SlurmUnavailable, local_slurm
    from arcodex.testing._stores import (
        SAMPLE_TITLE,
        ReadOnlyStoreTests,
        StoreTests,
        WritableStoreTests,
        remove_zarr_chunks,
        sample_dataset,
    )
    from arcodex.testing._support import clear_backend, full_record, sample_records, search_ids

_LAZY = {
    "BackendContract": "arcodex.testing._contract",
    "S3_KEY_ID": "arcodex.testing._datasets",
    "S3_SECRET": "arcodex.testing._datasets",
    "assert_same_values": "arcodex.testing._datasets",
    "http_directory": "arcodex.testing._datasets",
    "http_server": "arcodex.testing._datasets",
    "no_aws_credentials": "arcodex.testing._datasets",
    "publish_all": "arcodex.testing._datasets",
    "s3_server": "arcodex.testing._datasets",
    "serve_catalog": "arcodex.testing._datasets",
    "serve_workers": "arcodex.testing._datasets",
    "sources_dataset": "arcodex.testing._datasets",
    "PG_OPT_OUT": "arcodex.testing._postgres",
    "LocalPostgres": "arcodex.testing._postgres",
    "PostgresUnavailable": "arcodex.testing._postgres",
    "local_postgres": "arcodex.testing._postgres",
    "ProviderCase": "arcodex.testing._providers",
    "ProviderTests": "arcodex.testing._providers",
    "OPT_OUT": "arcodex.testing._slurm",
    "LocalSlurm": "arcodex.testing._slurm",
    "SlurmUnavailable": "arcodex.testing._slurm",
    "local_slurm": "arcodex.testing._slurm",
    "SAMPLE_TITLE": "arcodex.testing._stores",
    "ReadOnlyStoreTests": "arcodex.testing._stores",
    "StoreTests": "arcodex.testing._stores",
    "WritableStoreTests": "arcodex.testing._stores",
    "remove_zarr_chunks": "arcodex.testing._stores",
    "sample_dataset": "arcodex.testing._stores",
    "clear_backend": "arcodex.testing._support",
    "full_record": "arcodex.testing._support",
    "sample_records": "arcodex.testing._support",
    "search_ids": "arcodex.testing._support",
}


def __getattr__(name: str) -> Any:
    # Lazy so that loading the pytest plugin does not import pytest-only helpers or pydantic.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'arcodex.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
