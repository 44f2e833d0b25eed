"""Record and artifact identifiers."""

from __future__ import annotations

import re

from ulid import ULID

__all__ = ["ID_PATTERN", "new_id"]

# User-supplied ids: letters, digits and a few separators, starting with a
# letter or digit, so that ids are safe in paths, URLs and shell commands.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$"
ID_RE = re.compile(ID_PATTERN)


def new_id() -> str:
    """A new sortable unique id (ULID, lower case: creation order sorts first)."""
    return str(ULID()).lower()
