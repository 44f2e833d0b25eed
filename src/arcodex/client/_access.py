"""The credentials the client reads S3 assets with: a named storage profile, or AWS's own.

An asset publishes how to reach its data, never a secret. With ``profile``
the credentials come from what that ``s3`` storage profile names (its
environment variables or credentials file, read as when arcodex writes);
without, s3fs and Icechunk read the standard variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``) themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from arcodex.errors import NotFoundError, ValidationError
from arcodex.storage._access import (
    S3Credentials,
    access_error,
    credential_failure,
    profile_credentials,
)

__all__ = ["Access", "credential_errors", "resolve_access"]

#: How a caller names a profile, for messages.
OPTION = "profile=NAME (--profile NAME)"


@dataclass(frozen=True)
class Access:
    """Credentials for one open (None: the AWS variables), and the profile they come from."""

    credentials: S3Credentials | None = None
    profile: str | None = None
    config: Any = None

    def s3fs(self) -> dict[str, str]:
        return self.credentials.s3fs() if self.credentials else {}

    def icechunk(self) -> dict[str, Any]:
        """``icechunk.s3_storage``/``s3_credentials`` keyword arguments for the credentials."""
        return self.credentials.icechunk() if self.credentials else {"from_env": True}


def resolve_access(profile: Any, catalog: Any) -> Access:
    """The credentials of ``profile`` (a name in ``catalog``'s config, or an S3 profile config).

    Raises:
        ValidationError: a profile name without a catalog that defines it.
        NotFoundError: the catalog has no such profile.
        AuthError: the profile's credentials are not where it says.
    """
    from arcodex.storage import S3ProfileConfig

    if profile is None:
        return Access()
    if isinstance(profile, S3ProfileConfig):
        return Access(profile_credentials("given", profile), "given", profile)
    name = str(profile)
    profiles = _profiles(catalog, name)
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise NotFoundError(f"no storage profile {name!r} (known: {known}); name one of those")
    config = profiles[name]
    return Access(profile_credentials(name, config), name, config)


def _profiles(catalog: Any, name: str) -> dict[str, Any]:
    if catalog is None:
        raise ValidationError(
            f"profile {name!r} is defined by a catalog: pass catalog=PATH (or --catalog PATH)"
        )
    config = getattr(catalog, "config", None)
    if config is not None:
        return dict(config.profiles)
    from arcodex.catalog import Catalog

    with Catalog.open(os.fspath(catalog)) as cat:
        return dict(cat.config.profiles)


@contextmanager
def credential_errors(href: str, access: Access) -> Iterator[None]:
    """Missing or refused S3 credentials as one line saying which profile or variables to set."""
    try:
        yield
    except Exception as exc:
        failure = credential_failure(exc) if href.startswith(("s3://", "s3a://")) else None
        if failure is None:
            raise
        _forget_filesystems()
        raise access_error(href, failure, access.profile, access.config, option=OPTION) from exc


def _forget_filesystems() -> None:
    """Drop cached s3fs instances: one that failed keeps failing once credentials are set."""
    try:
        from s3fs import S3FileSystem
    except ImportError:
        return
    S3FileSystem.clear_instance_cache()
