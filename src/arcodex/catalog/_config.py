"""``arcodex.yaml``: catalog configuration, every key overridable by ``ARCODEX_*``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from arcodex.errors import ValidationError
from arcodex.storage import FileProfileConfig, ProfileConfig, S3ProfileConfig

__all__ = [
    "CONFIG_FILE",
    "CatalogConfig",
    "ClusterConfig",
    "FileProfileConfig",
    "IngestConfig",
    "PluginsConfig",
    "ServerConfig",
    "StacCollectionConfig",
    "StacDefaultsConfig",
    "StacProviderConfig",
    "load_config",
    "profile_secrets",
]

CONFIG_FILE = "arcodex.yaml"


def _default_profiles() -> dict[str, ProfileConfig]:
    return {"local": FileProfileConfig()}


class ClusterConfig(BaseModel):
    """Cluster settings (the ``cluster`` section of ``arcodex.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(default="local", description="local, threads, tcp://host:port, slurm or pbs")
    workers: int | None = Field(default=None, ge=1, description="default: the number of cores")
    threads: int = Field(default=1, ge=1, description="threads per worker")
    memory_limit: str = Field(default="auto", description="per worker, e.g. '2GiB'")
    jobqueue: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments of SLURMCluster/PBSCluster (queue, account, cores, memory, walltime…)",
    )
    jobs: int = Field(default=1, ge=1, description="jobs to start on a batch cluster")
    start_timeout: float = Field(
        default=300.0,
        gt=0,
        description="batch clusters: seconds to wait for the jobs' workers to join before "
        "failing (the work starts once all joined, or with those that did at the timeout)",
    )
    profile: bool = Field(
        default=False,
        description="local clusters: run distributed's statistical profiler on the workers "
        "(the dashboard's profile page; it samples every worker thread 100 times a second)",
    )


class OidcConfig(BaseModel):
    """An identity provider whose JWTs the server accepts (``server.auth.oidc``)."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1, description="the tokens' iss")
    audience: str = Field(min_length=1, description="the tokens' aud (this server)")
    jwks_url: str = Field(min_length=1, description="where the provider's signing keys are")
    role_claim: str = Field(default="arcodex_role", description="claim holding the role")
    projects_claim: str = Field(default="arcodex_projects", description="claim with projects")
    user_claim: str = Field(default="sub", description="claim naming the user")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])


class AuthConfig(BaseModel):
    """Who the server lets in (``server.auth``); writes always need a token."""

    model_config = ConfigDict(extra="forbid")

    anonymous_read: bool = Field(
        default=True,
        description="anonymous requests see published public data; false: reads need a token",
    )
    oidc: OidcConfig | None = Field(default=None, description="accept this provider's JWTs")
    rate_limit: int | None = Field(
        default=None, ge=1, description="most requests per minute of one token (429 beyond)"
    )


class ServerConfig(BaseModel):
    """Bounds of what the HTTP server accepts (the ``server`` section of ``arcodex.yaml``).

    Every request is checked against them before anything parses it; a request
    beyond them is refused with a 4xx that names the setting.
    """

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="largest request body")
    max_filter_length: int = Field(
        default=16_384, ge=64, description="longest CQL2 filter (characters)"
    )
    max_depth: int = Field(
        default=64,
        ge=4,
        le=256,
        description="deepest nesting of brackets and operators in a filter or JSON body",
    )
    max_list: int = Field(
        default=1_000, ge=1, description="most values in an IN list, ids or collections"
    )
    max_limit: int = Field(
        default=1_000, ge=1, description="most Items or Collections on one page (larger is cut)"
    )
    max_token_length: int = Field(default=1_024, ge=64, description="longest paging token")
    download_max_bytes: int = Field(
        default=1 << 30, ge=1, description="largest subset GET /datasets/{id}/download sends"
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="proxies whose Forwarded/X-Forwarded-* headers are trusted (IPs, networks "
        "or '*'); default: none",
    )
    auth: AuthConfig = Field(default_factory=AuthConfig, description="authentication")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins a browser may read the service from (CORS: STAC, /datasets, "
        "/zarr, /ogcapi), or '*'; default: none",
    )


class StacProviderConfig(BaseModel):
    """A STAC provider: who produced, processed, licensed or hosts the data."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the organisation or person")
    roles: list[Literal["licensor", "producer", "processor", "host"]] = Field(
        default_factory=list, description="licensor, producer, processor and/or host"
    )
    url: str | None = Field(default=None, description="its home page")
    description: str | None = None


class StacDefaultsConfig(BaseModel):
    """What a STAC Collection says when its records do not (the ``stac_defaults`` section).

    A record's own attributes always win: ``license``, and ``institution``,
    ``creator_name`` or ``publisher_name`` for providers.
    """

    model_config = ConfigDict(extra="forbid")

    license: str | None = Field(
        default=None, min_length=2, description="an SPDX id (CC-BY-4.0 …) or 'other'"
    )
    providers: list[StacProviderConfig] = Field(
        default_factory=list, description="STAC providers (name, roles, url)"
    )


class StacCollectionConfig(BaseModel):
    """One STAC Collection grouping records (an entry of ``stac_collections``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="the Collection id")
    where: list[str] = Field(
        min_length=1,
        description="query terms every member matches (tags=ocean, metadata.source=model …)",
    )
    title: str | None = None
    description: str | None = None
    license: str | None = Field(default=None, description="an SPDX id; default: the members'")
    keywords: list[str] = Field(default_factory=list)
    providers: list[StacProviderConfig] = Field(
        default_factory=list,
        description="STAC providers (name, roles, url); default: the members'",
    )

    @field_validator("where")
    @classmethod
    def _check_terms(cls, terms: list[str]) -> list[str]:
        from arcodex.model import parse_term

        for term in terms:
            parse_term(term)  # a QueryError (a ValueError) names the bad term
        return terms


class PluginsConfig(BaseModel):
    """Which installed plugins load (the ``plugins`` section of ``arcodex.yaml``).

    ``ARCODEX_PLUGINS`` wins: ``off``, ``on``, or a comma list of the plugins allowed.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="false: load no plugin")
    allow: list[str] | None = Field(
        default=None, description="the plugins (entry-point names) allowed; default: all"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        # ARCODEX_PLUGINS=off or =a,b arrives as text.
        if isinstance(data, str):
            from arcodex.plugins import parse_plugins_setting

            enabled, allow = parse_plugins_setting(data)
            return {"enabled": enabled, "allow": list(allow) if allow is not None else None}
        return data


class IngestConfig(BaseModel):
    """Where dataset templates and extents are (the ``ingest`` section of ``arcodex.yaml``).

    Both are directories of YAML files, relative to the catalog root; unset, ``templates/``
    and ``extents/`` are read when they exist.
    """

    model_config = ConfigDict(extra="forbid")

    templates: str | None = Field(
        default=None, description="directory of dataset templates (YAML); default: templates/"
    )
    extents: str | None = Field(
        default=None, description="directory of extents (YAML); default: extents/"
    )


#: Settings in the environment: ``ARCODEX_<KEY>``, nested keys joined by ``__``.
ENV_PREFIX, ENV_NESTED = "ARCODEX_", "__"


class CatalogConfig(BaseModel):
    """Settings of one catalog. Environment variables win over the file (``ARCODEX_DATABASE_URL``,
    ``ARCODEX_PROFILES__LOCAL__ROOT`` …).

    The environment is read as pydantic-settings reads it (prefix, ``__`` nesting, JSON for
    structured values, names in any case), without importing pydantic-settings, whose import
    cost more than the rest of a short command's settings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str | None = Field(
        default=None,
        description="sqlite:///path or postgresql://USER@HOST:PORT/DATABASE?schema=NAME;"
        " default catalog.sqlite in the root (never a password: see database_password)",
    )
    database_password: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="the PostgreSQL password, from ARCODEX_DATABASE_PASSWORD only (never"
        " written to arcodex.yaml); PGPASSWORD and ~/.pgpass work too",
    )
    default_profile: str = "local"
    profiles: dict[str, ProfileConfig] = Field(default_factory=_default_profiles)
    schema_policy: Literal["off", "warn", "strict"] = "warn"
    stac_profile: str | None = Field(
        default=None,
        description="a JSON Schema replacing arcodex's STAC metadata profile (relative to the root)",
    )
    stac_schemas: str | None = Field(
        default=None,
        description="the cache of STAC extension schemas (relative to the root); "
        "default: ~/.cache/arcodex/stac-schemas",
    )
    stac_asset_hrefs: dict[str, str] = Field(
        default_factory=dict,
        description="published STAC asset hrefs: a local path or URL prefix -> the public "
        "prefix that serves the same files (https://…); the longest prefix wins",
    )
    stac_collections: list[StacCollectionConfig] = Field(
        default_factory=list,
        description="Collections grouping records; a record in none is a Collection of its own",
    )
    stac_defaults: StacDefaultsConfig = Field(
        default_factory=StacDefaultsConfig,
        description="license and providers of Collections whose records name none",
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="the Dask cluster conversions run on"
    )
    server: ServerConfig = Field(
        default_factory=ServerConfig, description="limits and proxies of `arcodex serve`"
    )
    plugins: PluginsConfig = Field(
        default_factory=PluginsConfig, description="which installed plugins load"
    )
    pipelines: dict[str, list[str]] = Field(
        default_factory=dict,
        description="pipelines of registered steps, by name "
        "(ingest-netcdf: [extract-metadata, validate-record, write-artifact, commit-record]); "
        "run one with `arcodex run NAME`",
    )
    busy_timeout: float = Field(
        default=30.0, gt=0, description="seconds to wait for a locked database"
    )
    ingest: IngestConfig = Field(
        default_factory=IngestConfig,
        description="where dataset templates and extents are (`arcodex templates`)",
    )

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, data: Any) -> Any:
        # The file's values arrive as keyword arguments; the environment overrides them.
        if not isinstance(data, Mapping):
            return data
        env = _from_environment(cls, os.environ)
        url = env.get("database_url")
        if isinstance(url, str):
            from arcodex.backends._postgres_url import split_password

            # ARCODEX_DATABASE_URL may carry a password: it stays in memory, never in the URL.
            env["database_url"], password = split_password(url)
            if password is not None and "database_password" not in env:
                env["database_password"] = password
        return _deep_update(dict(data), env)

    @field_validator("database_url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        from arcodex.backends._postgres_url import PASSWORD_IN_URL, split_password

        if value is not None and split_password(value)[1] is not None:
            raise ValueError(PASSWORD_IN_URL)
        return value

    def to_yaml(self) -> str:
        """The settings as YAML, for writing ``arcodex.yaml``."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not data.get("pipelines"):
            # Left out when empty, so that a `pipelines:` section can be appended as is.
            data.pop("pipelines", None)
        if not data.get("ingest"):
            data.pop("ingest", None)
        return yaml.safe_dump(data, sort_keys=False)


def _from_environment(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings ``ARCODEX_*`` variables give, as nested values."""
    fields = model.model_fields
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        key, *rest = name[len(ENV_PREFIX) :].lower().split(ENV_NESTED)
        if key not in fields:
            continue  # ARCODEX_CATALOG and the like are not settings
        if not rest:
            value: Any = _json_or_text(raw) if _structured(fields[key].annotation) else raw
            out[key] = _deep_update(out[key], value) if key in out else value
            continue
        target = out.setdefault(key, {})
        if not isinstance(target, dict):
            continue
        for part in rest[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break
        else:
            target[rest[-1]] = _json_or_text(raw, structured_only=True)
    return out


def _structured(annotation: Any) -> bool:
    text = str(annotation)
    return any(word in text for word in ("dict", "list", "Config", "Mapping"))


def _json_or_text(raw: str, *, structured_only: bool = False) -> Any:
    """A JSON object or array as its value; anything else as the text it is."""
    if structured_only and not raw.lstrip().startswith(("{", "[")):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _deep_update(base: Any, update: Any) -> Any:
    if not (isinstance(base, dict) and isinstance(update, dict)):
        return update
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _deep_update(merged[key], value) if key in merged else value
    return merged


def load_config(root: Path) -> CatalogConfig:
    """Read ``root/arcodex.yaml`` (if present) and apply the environment."""
    path = root / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValidationError(f"{path} is not valid YAML ({exc}); fix the file") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ValidationError(f"{path} must hold a mapping of settings; fix the file")
        data = loaded or {}
    try:
        return CatalogConfig(**data)
    except ValueError as exc:
        first = exc.errors()[0] if hasattr(exc, "errors") else None  # pydantic ValidationError
        loc = [str(p) for p in first["loc"]] if first else []
        where = ".".join(loc) or "?"
        what = first["msg"] if first else str(exc)
        variable = _variable_of(loc)
        if variable:
            # The value is not repeated: a variable may hold a secret.
            raise ValidationError(
                f"bad setting ${variable} ({where}): {what}; fix or unset the variable"
            ) from None
        raise ValidationError(f"bad setting {where!r} in {path}: {what}; fix the file") from None


def _variable_of(loc: list[str]) -> str | None:
    """The ``ARCODEX_*`` variable that set the setting at ``loc``, if one is set."""
    import os

    for end in range(len(loc), 0, -1):
        name = "ARCODEX_" + "__".join(loc[:end]).upper()
        if name in os.environ:
            return name
    return None


def profile_secrets(config: CatalogConfig) -> list[str]:
    """Credential values the catalog's profiles may use, to keep them out of the log."""
    import configparser

    found: list[str] = []
    for profile in config.profiles.values():
        if not isinstance(profile, S3ProfileConfig):
            continue
        for name in (profile.key_env, profile.secret_env, profile.token_env):
            value = os.environ.get(name)
            if value:
                found.append(value)
        if profile.credentials_file:
            parser = configparser.ConfigParser()
            with suppress(OSError, configparser.Error):
                parser.read(Path(profile.credentials_file).expanduser())
                for section in parser.sections():
                    found.extend(v for k, v in parser[section].items() if k.startswith("aws_"))
    return found
