"""Who a request is from: the ``Authorization: Bearer`` middleware.

:class:`Authentication` reads the header of every HTTP request, authenticates
an arcodex API token (``arc_…``, :meth:`arcodex.catalog._users.Users.authenticate`)
or, when ``server.auth.oidc`` is configured, an OIDC JWT (signature from the
provider's JWKS, issuer, audience, expiry), and puts the
:class:`~arcodex.catalog._access.Principal` on ``request.state.principal``
(see :mod:`arcodex.server._identity`). The request then runs as that user
(:func:`arcodex.catalog._events.acting_user`), so the operations and events it
causes are the user's.

A bad, expired, revoked or forged token is refused with 401 and a one-line
message that never repeats it; a token over ``server.auth.rate_limit``
requests a minute with 429 and ``Retry-After``. Without ``anonymous_read``,
a request with no token is refused too (except the health probes).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from arcodex.catalog._access import ANONYMOUS, ROLES, Principal, Role
from arcodex.catalog._users import TOKEN_PREFIX
from arcodex.errors import AuthError

if TYPE_CHECKING:
    from arcodex.catalog import Catalog
    from arcodex.catalog._config import AuthConfig, OidcConfig

__all__ = ["Authentication", "OidcVerifier", "RateLimiter"]

#: Paths answered without a token even when anonymous reads are off (probes of the host).
OPEN_PATHS = frozenset({"/health", "/ready"})


class RateLimiter:
    """At most ``per_minute`` requests of one key in any 60 s (a sliding window)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 if a request of ``key`` may go now (and count it), else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                return max(1, int(seen[0] + 60 - now + 0.999))
            seen.append(now)
            return 0


class OidcVerifier:
    """Validates JWTs of one OIDC provider (PyJWT, keys from its JWKS URL, cached)."""

    def __init__(self, config: OidcConfig) -> None:
        import jwt

        self.config = config
        self._keys = jwt.PyJWKClient(config.jwks_url, cache_keys=True, timeout=10)

    def principal(self, token: str) -> Principal:
        import jwt

        config = self.config
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[a for a in config.algorithms if a.lower() != "none"],
                audience=config.audience,
                issuer=config.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the identity token has expired; sign in again") from None
        except (jwt.PyJWTError, ValueError) as exc:
            # The class name says what failed (issuer, audience, signature); never the token.
            raise AuthError(
                f"the identity token is not valid ({type(exc).__name__}); sign in again"
            ) from None
        name = claims.get(config.user_claim)
        if not isinstance(name, str) or not name:
            raise AuthError(f"the identity token names no user ({config.user_claim})")
        return Principal(
            name=name,
            role=_role(claims.get(config.role_claim)),
            projects=frozenset(_names(claims.get(config.projects_claim))),
        )


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _role(value: Any) -> Role:
    """The most trusted known role a claim names (reader when it names none)."""
    known = [r for r in _names(value) if r in ROLES[1:]]
    return max(known, key=ROLES.index) if known else "reader"


class Authentication:
    """ASGI middleware: the request's principal from its bearer token."""

    def __init__(self, app: Any, *, catalog: Catalog, config: AuthConfig) -> None:
        self.app = app
        self.catalog = catalog
        self.config = config
        self.oidc = OidcVerifier(config.oidc) if config.oidc is not None else None
        self.limiter = RateLimiter(config.rate_limit) if config.rate_limit else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from anyio import to_thread

        from arcodex.catalog._events import acting_user

        header = _header(scope, b"authorization")
        principal, key = ANONYMOUS, None
        if header is not None:
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                await _refuse(send, 401, "AuthError", "send 'Authorization: Bearer TOKEN'")
                return
            try:
                principal, key = await to_thread.run_sync(self._authenticate, token)
            except AuthError as exc:
                await _refuse(send, 401, "AuthError", str(exc))
                return
        elif not self.config.anonymous_read and _path(scope) not in OPEN_PATHS:
            await _refuse(
                send,
                401,
                "AuthError",
                "this server needs a token: send 'Authorization: Bearer TOKEN'",
            )
            return
        if key is not None and self.limiter is not None:
            wait = self.limiter.retry_after(key)
            if wait:
                await _refuse(
                    send,
                    429,
                    "TooManyRequests",
                    f"more than {self.limiter.per_minute} requests a minute with this token "
                    f"(server.auth.rate_limit); retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
                return
        scope.setdefault("state", {})["principal"] = principal
        with acting_user(principal.name):
            await self.app(scope, receive, send)

    def _authenticate(self, token: str) -> tuple[Principal, str]:
        """The principal and a rate-limit key (never the token itself) of ``token``."""
        if token.startswith(TOKEN_PREFIX):
            principal, token_id = self.catalog.users.authenticate(token)
            return principal, f"token:{token_id}"
        if self.oidc is not None and token.count(".") == 2:
            principal = self.oidc.principal(token)
            return principal, "jwt:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        raise AuthError("the token is not valid; ask an admin for a new one")


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _path(scope: Any) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


async def _refuse(
    send: Any, status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> None:
    import json

    body = json.dumps({"code": code, "description": description}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        raw.append((b"www-authenticate", b'Bearer error="invalid_token"'))
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
