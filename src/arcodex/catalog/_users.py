"""Users and API tokens of a catalog: who may use its server, with which role.

``catalog.users`` is a :class:`Users`. A token is ``arc_{id}_{secret}``: ``id``
(8 hex digits) names it in lists and events, ``secret`` is 32 random bytes
(``secrets.token_urlsafe``). The catalog keeps only the sha256 of the whole
token, so the token is shown once, when it is made (:meth:`Users.create_token`),
and a stolen database gives no usable token. A high-entropy secret needs no slow
password hash; the comparison is in constant time all the same.

None of this is needed by the CLI on a local catalog: it matters to the server.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from arcodex.catalog._access import ROLES, Principal, Role, check_visibility
from arcodex.catalog._events import current_user
from arcodex.errors import AuthError, ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from arcodex.backends._users_sql import TokenRow, UserRow, UserTables
    from arcodex.catalog._events import EventLog

__all__ = ["TOKEN_PREFIX", "TokenInfo", "User", "Users"]

#: How every arcodex API token starts (tells it from an OIDC JWT in a header).
TOKEN_PREFIX = "arc_"
#: Roles a stored user may have (anonymous is nobody's role).
USER_ROLES: tuple[Role, ...] = ROLES[1:]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_TOKEN = re.compile(r"^arc_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})$")
#: last_used_at is written at most this often per token (each write is a transaction).
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class User:
    """A user of the server: name, role and the projects it reads."""

    name: str
    role: Role
    projects: tuple[str, ...] = ()
    created_at: str | None = None
    created_by: str | None = None

    def principal(self) -> Principal:
        return Principal(name=self.name, role=self.role, projects=frozenset(self.projects))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "projects": list(self.projects),
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class TokenInfo:
    """What is known of a token after it is made: never its secret."""

    id: str
    user: str
    created_at: str
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= _now():
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_role(role: str) -> Role:
    if role not in USER_ROLES:
        raise ValidationError(f"role {role!r}: give one of {', '.join(USER_ROLES)}")
    return role


def _check_projects(projects: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    for name in projects:
        check_visibility(f"project:{name}")
    return tuple(sorted(set(projects)))


class Users:
    """The users and tokens of one catalog, kept by its backend."""

    def __init__(self, backend: Any, events: EventLog | None = None) -> None:
        if not hasattr(backend, "user_insert"):
            raise ValidationError(
                f"the {type(backend).__name__} backend keeps no users; use sqlite or postgres"
            )
        self._tables: UserTables = backend
        self._events = events

    def _event(self, event: str, message: str, **fields: Any) -> None:
        if self._events is not None:
            self._events.emit(event, message, **fields)

    # -- users -------------------------------------------------------------------------------

    def add(
        self, name: str, role: str = "reader", projects: list[str] | tuple[str, ...] = ()
    ) -> User:
        """Add user ``name``; ConflictError if there is one."""
        if not _NAME.match(name):
            raise ValidationError(
                f"user name {name!r}: use letters, digits, '.', '_', '@' and '-' (1-100)"
            )
        user = User(name, _check_role(role), _check_projects(projects), _now(), current_user())
        row = (
            user.name,
            user.role,
            json.dumps(list(user.projects)),
            str(user.created_at),
            user.created_by,
        )
        if not self._tables.user_insert(row):
            raise ConflictError(f"user {name!r} exists; `arcodex user role` changes its role")
        self._event("user.add", f"user {name} added as {role}", user_name=name, role=role)
        return user

    def get(self, name: str) -> User:
        row = self._tables.user_get(name)
        if row is None:
            raise NotFoundError(f"no user {name!r}; `arcodex user list` lists them")
        return _user(row)

    def list(self) -> list[User]:
        return [_user(row) for row in self._tables.user_rows()]

    def set_role(
        self, name: str, role: str, projects: builtins.list[str] | tuple[str, ...] | None = None
    ) -> User:
        """Change a user's role (and projects, when given)."""
        user = self.get(name)
        kept = user.projects if projects is None else _check_projects(projects)
        self._tables.user_update(name, _check_role(role), json.dumps(list(kept)))
        self._event("user.role", f"user {name} is now {role}", user_name=name, role=role)
        return self.get(name)

    def remove(self, name: str) -> None:
        """Remove a user and every token of it."""
        if not self._tables.user_delete(name):
            raise NotFoundError(f"no user {name!r}; `arcodex user list` lists them")
        self._event("user.remove", f"user {name} removed", user_name=name)

    # -- tokens ------------------------------------------------------------------------------

    def create_token(self, user: str, expires_days: float | None = None) -> tuple[TokenInfo, str]:
        """A new token of ``user``: its info and the secret, which is never shown again."""
        self.get(user)
        if expires_days is not None and not 0 < expires_days <= 36_500:
            raise ValidationError(f"--expires {expires_days}: give a number of days, 1 to 36500")
        token_id = secrets.token_hex(4)
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC)
        expires = (
            (now + timedelta(days=expires_days)).isoformat(timespec="seconds")
            if expires_days is not None
            else None
        )
        info = TokenInfo(token_id, user, now.isoformat(timespec="seconds"), expires)
        self._tables.token_insert(
            (token_id, user, _digest(secret), info.created_at, expires, None, None)
        )
        self._event(
            "token.create", f"token {token_id} made for {user}", token_id=token_id, user_name=user
        )
        return info, secret

    def tokens(self, user: str | None = None) -> builtins.list[TokenInfo]:
        """The tokens (of ``user``, or all), oldest first; never their secrets."""
        if user is not None:
            self.get(user)
        return [_token(row) for row in self._tables.token_rows(user)]

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke token ``token_id``: it authenticates nobody from now on."""
        if not self._tables.token_revoke(token_id, _now()):
            raise NotFoundError(f"no token {token_id!r}; `arcodex token list` lists them")
        self._event("token.revoke", f"token {token_id} revoked", token_id=token_id)
        row = self._tables.token_get(token_id)
        assert row is not None
        return _token(row)

    def authenticate(self, token: str) -> tuple[Principal, str]:
        """The principal of ``token`` and the token's id; AuthError if it is not a good one.

        The message never repeats the token. Unknown, forged, revoked and expired
        tokens are told apart only by the message, never by what they reveal.
        """
        found = _TOKEN.match(token)
        row = self._tables.token_get(found.group(1)) if found else None
        if row is None or not hmac.compare_digest(row[2], _digest(token)):
            raise AuthError("the token is not valid; ask an admin for a new one")
        info = _token(row)
        if info.status == "revoked":
            raise AuthError(f"token {info.id} is revoked; ask an admin for a new one")
        if info.status == "expired":
            raise AuthError(f"token {info.id} has expired; ask an admin for a new one")
        user_row = self._tables.user_get(info.user)
        if user_row is None:  # the user went; its tokens went with it, unless a race
            raise AuthError("the token is not valid; ask an admin for a new one")
        now = datetime.now(UTC)
        if (
            info.last_used_at is None
            or datetime.fromisoformat(info.last_used_at) + _TOUCH_EVERY < now
        ):
            self._tables.token_used(info.id, now.isoformat(timespec="seconds"))
        return _user(user_row).principal(), info.id


def _user(row: UserRow) -> User:
    name, role, projects, created_at, created_by = row
    return User(name, cast(Role, role), tuple(json.loads(projects)), created_at, created_by)


def _token(row: TokenRow) -> TokenInfo:
    token_id, user, _hash, created_at, expires_at, last_used_at, revoked_at = row
    return TokenInfo(token_id, user, created_at, expires_at, last_used_at, revoked_at)
