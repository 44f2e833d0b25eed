"""How readers reach S3 products: the options each library expects, and the credentials.

A product is published with the non-secret options its consumer library takes
as they are: s3fs storage options for Zarr (``xarray:storage_options``),
fsspec ``reference`` filesystem options for kerchunk (``target_options`` for
the reference file, ``remote_protocol``/``remote_options`` for the files it
references) and the keyword arguments of ``icechunk.s3_storage`` for Icechunk.
Credentials are never published: a reader takes them from a named storage
profile (its environment variables or credentials file) or from the standard
AWS variables, which s3fs and Icechunk read by themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AWS_VARIABLES",
    "SECRET_KEYS",
    "S3Credentials",
    "access_error",
    "credential_failure",
    "icechunk_storage_config",
    "match_profile",
    "profile_credentials",
    "public_options",
    "reference_options",
    "s3fs_options",
    "without_secrets",
]

#: The standard variables s3fs (botocore) and Icechunk read credentials from.
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
SECRET_KEYS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    }
)
# In-process settings that mean nothing to another reader.
_TRANSIENT = frozenset({"asynchronous", "loop", "skip_instance_cache", "use_listings_cache"})
_S3 = ("s3", "s3a")


@dataclass(frozen=True)
class S3Credentials:
    """An access key (and session token), held in memory only; its repr shows no value."""

    key: str = field(repr=False)
    secret: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def s3fs(self) -> dict[str, str]:
        """As s3fs storage options."""
        return {
            "key": self.key,
            "secret": self.secret,
            **({"token": self.token} if self.token else {}),
        }

    def icechunk(self) -> dict[str, str]:
        """As keyword arguments of ``icechunk.s3_storage`` and ``icechunk.s3_credentials``."""
        out = {"access_key_id": self.key, "secret_access_key": self.secret}
        if self.token:
            out["session_token"] = self.token
        return out


def without_secrets(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without credentials or in-process settings, at any depth."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in SECRET_KEYS or key in _TRANSIENT:
            continue
        out[str(key)] = without_secrets(value) if isinstance(value, Mapping) else value
    return out


def s3fs_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The non-secret s3fs form of ``options``.

    Accepts s3fs options or the flat form older catalogs recorded
    (``region_name`` and ``addressing_style`` at the top), and returns
    ``{"anon": ..., "endpoint_url": ..., "client_kwargs": {"region_name": ...},
    "config_kwargs": {"s3": {"addressing_style": "path"}}}`` (only what is set).
    """
    clean = without_secrets(options)
    client = dict(clean.pop("client_kwargs", None) or {})
    config = dict(clean.pop("config_kwargs", None) or {})
    region = clean.pop("region_name", None) or clean.pop("region", None)
    if region and not client.get("region_name"):
        client["region_name"] = region
    style = clean.pop("addressing_style", None)
    if style:
        config["s3"] = {**dict(config.get("s3") or {}), "addressing_style": style}
    endpoint = clean.pop("endpoint_url", None) or client.pop("endpoint_url", None)
    out: dict[str, Any] = {"anon": bool(clean.pop("anon", False))}
    if endpoint:
        out["endpoint_url"] = endpoint
    out.update(clean)
    if client:
        out["client_kwargs"] = client
    if config:
        out["config_kwargs"] = config
    return out


def public_options(protocol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader needs (no secret) to reach ``protocol://`` objects opened with ``options``."""
    if protocol in _S3:
        return s3fs_options(options)
    return without_secrets(options)


def reference_options(
    target_url: str,
    target_options: Mapping[str, Any],
    remote_protocol: str | None,
    remote_options: Mapping[str, Any],
) -> dict[str, Any]:
    """fsspec ``reference`` filesystem options of a kerchunk product, without secrets.

    ``fsspec.filesystem("reference", fo=href, **options)`` then reads it, as
    kerchunk's xarray backend does with ``storage_options``.
    """
    out: dict[str, Any] = {}
    if remote_protocol:
        out["remote_protocol"] = remote_protocol
        if remote_protocol not in ("file", "local"):
            out["remote_options"] = public_options(remote_protocol, remote_options)
    if "://" in target_url and not target_url.startswith("file://"):
        protocol = target_url.split("://", 1)[0]
        out["target_protocol"] = protocol
        out["target_options"] = public_options(protocol, target_options)
    return out


def icechunk_storage_config(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``icechunk.s3_storage`` for the repository at ``s3://`` ``url``.

    No credentials: add ``from_env=True`` (the AWS variables) or a key.
    """
    bucket, _, prefix = url.split("://", 1)[1].strip("/").partition("/")
    s3fs = s3fs_options(options)
    endpoint = s3fs.get("endpoint_url")
    region = (s3fs.get("client_kwargs") or {}).get("region_name")
    style = ((s3fs.get("config_kwargs") or {}).get("s3") or {}).get("addressing_style")
    config: dict[str, Any] = {"bucket": bucket, "prefix": prefix or None}
    # Icechunk needs a region even for endpoints that ignore it.
    config["region"] = region or ("us-east-1" if endpoint else None)
    config["endpoint_url"] = endpoint
    config["allow_http"] = bool(endpoint and str(endpoint).startswith("http://"))
    config["force_path_style"] = style == "path" or bool(endpoint)
    if s3fs.get("anon"):
        config["anonymous"] = True
    return {k: v for k, v in config.items() if v is not None}


def profile_credentials(name: str, profile: Any) -> S3Credentials | None:
    """The credentials an ``s3`` profile names (None for an anonymous one).

    Raises:
        AuthError: the variables or the credentials file it names hold none.
        ValidationError: the profile is not an ``s3`` profile.
    """
    from arcodex.errors import ValidationError
    from arcodex.storage._profiles import S3ProfileConfig, _credentials

    if not isinstance(profile, S3ProfileConfig):
        raise ValidationError(f"storage profile {name!r} is not an s3 profile; name an s3 one")
    if profile.anonymous:
        return None
    found = _credentials(name, profile)
    return S3Credentials(found["key"], found["secret"], found.get("token"))


def match_profile(url: str, profiles: Mapping[str, Any]) -> str | None:
    """The ``s3`` profile whose bucket (and prefix, the longest first) holds ``url``."""
    from arcodex.storage._profiles import S3ProfileConfig

    if url.split("://", 1)[0] not in _S3:
        return None
    path = url.split("://", 1)[1].strip("/")
    best, length = None, -1
    for name, profile in profiles.items():
        if not isinstance(profile, S3ProfileConfig):
            continue
        base = "/".join(p for p in (profile.bucket, profile.prefix.strip("/")) if p)
        bucket_only = path == profile.bucket or path.startswith(profile.bucket + "/")
        inside = path == base or path.startswith(base + "/")
        score = len(base) if inside else 0 if bucket_only else -1
        if score > length:
            best, length = name, score
    return best


def credential_failure(exc: BaseException) -> str | None:
    """``"missing"`` or ``"refused"`` when ``exc`` is S3 refusing or lacking credentials."""
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc))
    if names & {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return "missing"
    if (
        "no providers in chain provided credentials" in text
        or "Unable to locate credentials" in text
    ):
        return "missing"
    if any(isinstance(e, PermissionError) for e in _chain(exc)) or any(
        word in text
        for word in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden")
    ):
        return "refused"
    return None


def access_error(
    url: str, failure: str, profile: str | None = None, config: Any = None, *, option: str
) -> Exception:
    """The one-line error for S3 ``failure`` (see :func:`credential_failure`) at ``url``.

    ``option`` is how the caller names a profile (``--dest-profile NAME``); no value of a
    credential is ever part of the message.
    """
    from arcodex.errors import AuthError

    if profile is not None:
        where = (
            f"its credentials file {config.credentials_file} [{config.credentials_section}]"
            if getattr(config, "credentials_file", None)
            else f"${getattr(config, 'key_env', 'AWS_ACCESS_KEY_ID')} and "
            f"${getattr(config, 'secret_env', 'AWS_SECRET_ACCESS_KEY')}"
        )
        if failure == "refused":
            return AuthError(
                f"S3 refused the credentials of storage profile {profile!r} for {url}; "
                f"check {where}"
            )
        return AuthError(f"storage profile {profile!r} has no credentials for {url}; set {where}")
    standard = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    if failure == "refused":
        return AuthError(
            f"S3 refused the credentials for {url}; check {standard}, "
            f"or pass {option} (an s3 storage profile)"
        )
    return AuthError(
        f"no S3 credentials for {url}; set {standard}, or pass {option} (an s3 storage profile)"
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
