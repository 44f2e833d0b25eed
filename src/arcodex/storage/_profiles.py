"""Storage profiles: named places where arcodex writes managed data.

``file`` (a directory), ``memory`` (in-process, for tests and scratch) and
``s3`` (any S3-compatible endpoint). A profile never holds a credential: an
``s3`` profile names the environment variables, or the shared credentials
file and its section, to read them from when it is used.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from arcodex.errors import ArcodexError, AuthError, PluginError, ValidationError
from arcodex.plugins import registry as plugin_registry
from arcodex.storage._fsspec import FsspecStore
from arcodex.storage._local import LocalStore

__all__ = [
    "FileProfileConfig",
    "MemoryProfileConfig",
    "PluginProfileConfig",
    "ProfileConfig",
    "S3ProfileConfig",
    "open_storage",
]

DEFAULT_TEMPLATE = "{kind}/{id}{ext}"


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path_template: str = DEFAULT_TEMPLATE


class FileProfileConfig(_Profile):
    """A directory on a local or shared filesystem."""

    type: Literal["file"] = "file"
    root: str = Field(default="store", description="relative paths are under the catalog root")


class MemoryProfileConfig(_Profile):
    """fsspec's in-process memory filesystem (gone when the process ends)."""

    type: Literal["memory"] = "memory"
    root: str = "arcodex"


class S3ProfileConfig(_Profile):
    """A bucket (and prefix) on an S3-compatible endpoint."""

    type: Literal["s3"] = "s3"
    bucket: str = Field(min_length=3)
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool = False
    anonymous: bool = False
    key_env: str = "AWS_ACCESS_KEY_ID"
    secret_env: str = "AWS_SECRET_ACCESS_KEY"
    token_env: str = "AWS_SESSION_TOKEN"
    credentials_file: str | None = Field(
        default=None, description="an AWS shared credentials file; read instead of the environment"
    )
    credentials_section: str = "default"


class PluginProfileConfig(_Profile):
    """A profile of a kind a plugin provides: its settings go to the plugin's factory."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")


_BUILT_IN_KINDS = ("file", "memory", "s3")
# A plugin's profile kind of one of these names is refused (reserving discovers nothing).
plugin_registry().reserve("profile_kind", _BUILT_IN_KINDS)


def _profile_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind is None:
        return None
    return kind if kind in _BUILT_IN_KINDS else "plugin"


ProfileConfig = Annotated[
    Annotated[FileProfileConfig, Tag("file")]
    | Annotated[MemoryProfileConfig, Tag("memory")]
    | Annotated[S3ProfileConfig, Tag("s3")]
    | Annotated[PluginProfileConfig, Tag("plugin")],
    Discriminator(
        _profile_kind,
        custom_error_type="profile_type",
        custom_error_message="a storage profile needs a 'type' (file, memory, s3, or a plugin's)",
    ),
]


def open_storage(name: str, profile: Any, catalog_root: Path) -> LocalStore | FsspecStore:
    """The storage a profile describes; ``catalog_root`` anchors relative ``file`` roots."""
    if isinstance(profile, FileProfileConfig):
        root = Path(profile.root)
        if root.is_absolute():
            return LocalStore(root, locator_prefix=str(root) + "/")
        # Inside the catalog, locators stay relative so that the catalog can move.
        return LocalStore(catalog_root / root, locator_prefix=root.as_posix() + "/")
    fsspec = _require("fsspec", "s3")
    if isinstance(profile, MemoryProfileConfig):
        return FsspecStore(fsspec.filesystem("memory"), "memory", profile.root, name)
    if isinstance(profile, S3ProfileConfig):
        _require("s3fs", "s3")
        options: dict[str, Any] = {"client_kwargs": {}}
        if profile.endpoint_url:
            options["endpoint_url"] = profile.endpoint_url
        if profile.region:
            options["client_kwargs"]["region_name"] = profile.region
        if profile.path_style:
            options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
        if profile.anonymous:
            options["anon"] = True
        else:
            options.update(_credentials(name, profile))
        # A fresh instance per catalog: cached instances would share credentials across profiles.
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **options)
        base = "/".join(p for p in (profile.bucket, profile.prefix.strip("/")) if p)
        return FsspecStore(fs, "s3", base, name)
    if isinstance(profile, PluginProfileConfig):
        return _plugin_storage(name, profile, catalog_root)
    raise ValidationError(f"storage profile {name!r} has an unknown type")


def _plugin_storage(
    name: str, profile: PluginProfileConfig, catalog_root: Path
) -> LocalStore | FsspecStore:
    """The storage of a plugin's profile kind: ``factory(name, settings, catalog_root)``."""
    from arcodex.plugins import registry

    kinds = registry().profile_kinds()
    factory = kinds.get(profile.type)
    if not callable(factory):
        known = ", ".join([*_BUILT_IN_KINDS, *sorted(kinds)])
        raise ValidationError(
            f"storage profile {name!r} has type {profile.type!r}, which no installed plugin "
            f"provides (known: {known}); install the plugin or fix the profile in arcodex.yaml"
        )
    settings = profile.model_dump(exclude={"type"})
    try:
        storage = factory(name, settings, catalog_root)
    except ArcodexError:
        raise
    except Exception as exc:
        raise PluginError(
            f"storage profile {name!r}: plugin {registry().owner('profile_kind', profile.type)!r} "
            f"failed to open {profile.type!r} storage: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(storage, LocalStore | FsspecStore):
        raise PluginError(
            f"storage profile {name!r}: the {profile.type!r} factory returned a "
            f"{type(storage).__name__}, not a LocalStore or FsspecStore"
        )
    return storage


def _credentials(name: str, profile: S3ProfileConfig) -> dict[str, str]:
    if profile.credentials_file:
        path = Path(profile.credentials_file).expanduser()
        parser = configparser.ConfigParser()
        try:
            with open(path, encoding="utf-8") as fh:
                parser.read_file(fh)
            section = parser[profile.credentials_section]
            creds = {
                "key": section["aws_access_key_id"],
                "secret": section["aws_secret_access_key"],
            }
        except (OSError, KeyError, configparser.Error) as exc:
            raise AuthError(
                f"storage profile {name!r}: cannot read section [{profile.credentials_section}] "
                f"with aws_access_key_id and aws_secret_access_key from {path}; fix the file or the profile"
            ) from exc
        if section.get("aws_session_token"):
            creds["token"] = section["aws_session_token"]
        return creds
    key, secret = os.environ.get(profile.key_env), os.environ.get(profile.secret_env)
    if not key or not secret:
        raise AuthError(
            f"storage profile {name!r} needs credentials: set ${profile.key_env} and "
            f"${profile.secret_env}, name a credentials_file, or set anonymous: true"
        )
    creds = {"key": key, "secret": secret}
    token = os.environ.get(profile.token_env)
    if token:
        creds["token"] = token
    return creds


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PluginError(
            f"this storage profile needs {module}; install it with pip install 'arcodex[{extra}]'"
        ) from exc
