"""The Catalog service."""

from arcodex.catalog._catalog import (
    ENV_CATALOG,
    Catalog,
    CatalogInfo,
    find_catalog_root,
    open_catalog,
)
from arcodex.catalog._config import CONFIG_FILE, CatalogConfig, load_config
from arcodex.catalog._database import (
    CatalogDigest,
    CopyResult,
    DatabaseStatus,
    UpgradeResult,
    catalog_digest,
    copy_database,
    database_status,
    database_url,
    upgrade_database,
)
from arcodex.catalog._hooks import HOOK_POINTS, HookContext, HookError, HookResult
from arcodex.catalog._ingest import IngestedFile, IngestResult
from arcodex.catalog._pipeline import (
    Pipeline,
    PipelineContext,
    Step,
    get_pipeline,
    get_step,
    list_pipelines,
    open_unit,
    register_pipeline,
    register_step,
    run_pipeline,
    step_registry,
)
from arcodex.storage import FileProfileConfig

__all__ = [
    "CONFIG_FILE",
    "ENV_CATALOG",
    "HOOK_POINTS",
    "Catalog",
    "CatalogConfig",
    "CatalogDigest",
    "CatalogInfo",
    "CopyResult",
    "DatabaseStatus",
    "FileProfileConfig",
    "HookContext",
    "HookError",
    "HookResult",
    "IngestResult",
    "IngestedFile",
    "Pipeline",
    "PipelineContext",
    "Step",
    "UpgradeResult",
    "catalog_digest",
    "copy_database",
    "database_status",
    "database_url",
    "find_catalog_root",
    "get_pipeline",
    "get_step",
    "list_pipelines",
    "load_config",
    "open_catalog",
    "open_unit",
    "register_pipeline",
    "register_step",
    "run_pipeline",
    "step_registry",
    "upgrade_database",
]
