"""Who a request is from, for every router: :func:`principal_of` and :func:`require`.

The authentication middleware (:mod:`arcodex.server._auth`) puts the request's
:class:`~arcodex.catalog._access.Principal` on ``request.state.principal``
before any route runs; a request it has not seen is anonymous. Routes never
read headers themselves: they ask :func:`principal_of`, filter what they
return with the principal (``Principal.can_see``, ``Principal.query_conditions``),
and guard changes with ``Depends(require("writer"))``.

A record the principal may not see is answered exactly as a record that does
not exist (404 with the same message), so that nothing hidden leaks.
"""

from __future__ import annotations

from collections.abc import Callable

# At run time, not only for type checking: FastAPI reads the annotation of the
# dependency's parameter to know it is the request (else it asks for a query parameter).
from starlette.requests import Request

from arcodex.catalog._access import ANONYMOUS, Principal, Role
from arcodex.errors import AuthError

__all__ = ["Forbidden", "principal_of", "require"]


class Forbidden(AuthError):
    """The principal is known but its role does not allow this (HTTP 403)."""


def principal_of(request: Request) -> Principal:
    """The principal of ``request`` (anonymous unless the middleware said otherwise)."""
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else ANONYMOUS


def require(role: Role) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the request's principal, if its role is ``role`` or above.

    Anonymous requests get :class:`~arcodex.errors.AuthError` (401), known principals
    of a lesser role :class:`Forbidden` (403).
    """

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if principal.at_least(role):
            return principal
        if principal.anonymous:
            raise AuthError(f"this needs the {role} role: send 'Authorization: Bearer TOKEN'")
        raise Forbidden(
            f"user {principal.name!r} is a {principal.role}; this needs the {role} role "
            "(an admin can change it with `arcodex user role`)"
        )

    return dependency
