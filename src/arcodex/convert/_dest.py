"""Which credentials reach a product's ``--dest``: a named profile, a matching one, or AWS's.

``--dest s3://bucket/…`` is written with ``--dest-profile NAME`` when given,
else with the catalog's ``s3`` profile whose bucket (and prefix) holds the URL,
else with the standard AWS variables. Whichever it is, a missing or refused
credential is one line that says which profile or variables to set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from arcodex.convert._target import Target
from arcodex.errors import ValidationError
from arcodex.storage._access import access_error, credential_failure, match_profile

if TYPE_CHECKING:
    from arcodex.catalog import Catalog

__all__ = ["dest_access", "reach"]


def dest_access(
    cat: Catalog | None,
    url: str,
    dest_profile: str | None,
    dest_options: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], str | None]:
    """The storage options for the product at ``url``, and the profile they come from.

    Raises:
        ValidationError: ``dest_profile`` is given without a catalog.
        NotFoundError: the catalog has no such profile.
        AuthError: the profile's credentials are not where it says.
    """
    if dest_options:
        return dict(dest_options), dest_profile
    if dest_profile and cat is None:
        raise ValidationError("--dest-profile needs a catalog (--catalog) that defines it")
    if "://" not in url or url.startswith("file://") or cat is None:
        return {}, None
    name = dest_profile or match_profile(url, cat.config.profiles)
    if name is None:
        return {}, None
    store = cat.storage(name)
    fs = getattr(store, "fs", None)
    return dict(getattr(fs, "storage_options", {}) or {}), name


def reach(target: Target, profile: str | None, cat: Catalog | None, *, option: str) -> None:
    """Check that ``target``'s storage answers, turning a credential failure into one line.

    Raises:
        AuthError: credentials are missing or refused (the message says which to set).
    """
    if target.is_local:
        return
    try:
        target.exists()
    except Exception as exc:
        failure = credential_failure(exc)
        if failure is None:
            raise
        config = cat.config.profiles.get(profile) if cat is not None and profile else None
        raise access_error(target.url, failure, profile, config, option=option) from exc
