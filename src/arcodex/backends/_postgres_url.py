"""Reading a PostgreSQL URL's password out of it, without psycopg (config loading uses it).

A password belongs in ``PGPASSWORD``, ``~/.pgpass`` or ``ARCODEX_DATABASE_PASSWORD``;
these helpers find one in a URL (``postgresql://user:PW@host/db`` or ``?password=PW``)
so that it can be refused (``arcodex.yaml``, ``arcodex init --database``) or split off
into memory (``ARCODEX_DATABASE_URL``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["PASSWORD_IN_URL", "is_postgres_url", "split_password"]

PASSWORD_IN_URL = (
    "the database URL holds a password; put the password in PGPASSWORD, ~/.pgpass or"
    " ARCODEX_DATABASE_PASSWORD, not in the URL"
)


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return url.partition(":")[0].lower() in ("postgresql", "postgres")


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password, and the password (None when it holds none).

    A URL that cannot be read is returned as it is (the backend says what is wrong).
    """
    if not is_postgres_url(url):
        return url, None
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url, None
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = [v for k, v in query if k == "password"]
    if password is None and not in_query:
        return url, None
    netloc = parts.netloc
    if password is not None:
        who, _, place = netloc.rpartition("@")
        netloc = f"{who.split(':', 1)[0]}@{place}"
        secret = unquote(password)
    else:
        secret = in_query[-1]
    rest = urlencode([(k, v) for k, v in query if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, rest, parts.fragment)), secret
