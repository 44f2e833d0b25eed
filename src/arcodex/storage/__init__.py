"""Storage: managed files, path planning, atomic writes, hashing."""

from arcodex.storage._local import LocalStore, hash_file, render_path

__all__ = ["LocalStore", "hash_file", "render_path"]
