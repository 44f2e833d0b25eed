"""What anyone may see of a template or an extent: no file paths, no secrets.

``arcodex templates`` and ``GET /templates`` show the same view. Provider
parameters whose key looks like a secret (key, token, password, secret,
credential) are left out at any depth, and so are those whose key names a
local place (path, directory, root, cache, glob, file …) and values that
name a local path or carry a URL's user and password; the target's
destination is a path, so it is left out too.
"""

from __future__ import annotations

import re
from typing import Any

from arcodex.ingest._model import Extent, Template

__all__ = ["public_extent", "public_template"]

_SECRET = re.compile(r"key|token|passw|secret|credential|auth", re.IGNORECASE)
_PLACE = re.compile(
    r"^(paths?|dirs?|director(y|ies)|roots?|cache|globs?|files?|dest|local)$"
    r"|_(paths?|dirs?|directory|root|cache|file|dest)$",
    re.IGNORECASE,
)
_LOCAL = re.compile(r"^(/|~|\.{1,2}/|[A-Za-z]:[\\/]|file:)|\\")
_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@]*@", re.IGNORECASE)


def _shown(value: Any) -> bool:
    return not (isinstance(value, str) and (_LOCAL.search(value) or _USERINFO.search(value)))


def _public_params(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k): _public_params(v)
            for k, v in value.items()
            if not _SECRET.search(str(k)) and not _PLACE.search(str(k)) and _shown(v)
        }
    if isinstance(value, list | tuple):
        return [_public_params(v) for v in value if _shown(v)]
    return value


def public_template(template: Template) -> dict[str, Any]:
    """The template as JSON, without paths and secrets."""
    data = template.model_dump(mode="json")
    data["provider"]["params"] = _public_params(data["provider"]["params"])
    data["target"].pop("dest", None)
    return data


def public_extent(extent: Extent) -> dict[str, Any]:
    """The extent as JSON."""
    return extent.model_dump(mode="json")
