"""Storage: profiles, managed files and objects, path planning, atomic writes, hashing."""

from arcodex.storage._fsspec import FsspecStore
from arcodex.storage._local import LocalStore, hash_file, render_path
from arcodex.storage._profiles import (
    FileProfileConfig,
    MemoryProfileConfig,
    PluginProfileConfig,
    ProfileConfig,
    S3ProfileConfig,
    open_storage,
)
from arcodex.storage._sizes import content_size, local_content_size

__all__ = [
    "FileProfileConfig",
    "FsspecStore",
    "LocalStore",
    "MemoryProfileConfig",
    "PluginProfileConfig",
    "ProfileConfig",
    "S3ProfileConfig",
    "content_size",
    "hash_file",
    "local_content_size",
    "open_storage",
    "render_path",
]
