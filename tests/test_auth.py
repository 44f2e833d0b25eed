"""Users, API tokens and the server's bearer authentication (API tokens and OIDC JWTs)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr

from arcodex.catalog import Catalog, CatalogConfig
from arcodex.errors import AuthError, ConflictError, NotFoundError, ValidationError


class TestClient:
    """The app over httpx's ASGI transport, one event loop per request (Starlette's
    TestClient warns of httpx, and warnings are errors here)."""

    __test__ = False

    def __init__(self, app: Any) -> None:
        self.app = app

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://arcodex") as http:
                return await http.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


def _netcdf(path: Path, lon: float, start: str) -> Path:
    xr.Dataset(
        {"t": (("time", "lat", "lon"), np.full((2, 2, 2), sum(map(ord, path.name)), "f4"))},
        coords={
            "time": np.array([start, "2030-01-02"], dtype="datetime64[ns]")[:2],
            "lat": [0.0, 1.0],
            "lon": [lon, lon + 1],
        },
    ).to_netcdf(path)
    return path


def _config(request: pytest.FixtureRequest, **server: Any) -> CatalogConfig:
    # With ARCODEX_TEST_BACKEND=postgres, conftest gives each new catalog a schema of its own.
    return CatalogConfig(server=server)


@pytest.fixture
def cat(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Catalog]:
    with Catalog.create(tmp_path / "cat", config=_config(request)) as catalog:
        yield catalog


def _rows(catalog: Catalog, table: str) -> list[tuple[Any, ...]]:
    """The table as the database holds it (SQL straight to the backend)."""
    return catalog.backend._auth_run(f"SELECT * FROM {table}")  # type: ignore[attr-defined]


def test_tokens_are_hashed_shown_once_and_revocable(cat: Catalog) -> None:
    users = cat.users
    users.add("alice", "writer", ["p1"])
    with pytest.raises(ConflictError):
        users.add("alice")
    with pytest.raises(ValidationError, match="role"):
        users.add("bob", "root")
    info, secret = users.create_token("alice")
    assert secret.startswith(f"arc_{info.id}_") and len(secret) > 40
    rows = _rows(cat, "tokens")
    assert len(rows) == 1
    assert secret not in repr(rows)  # only the hash is kept
    assert hashlib.sha256(secret.encode()).hexdigest() in rows[0]
    listed = users.tokens("alice")
    assert [t.id for t in listed] == [info.id]
    assert secret not in repr(listed) and "token" not in listed[0].to_dict()
    principal, token_id = users.authenticate(secret)
    assert (principal.name, principal.role, principal.projects) == ("alice", "writer", {"p1"})
    assert token_id == info.id and users.tokens()[0].last_used_at is not None
    # Forged: a changed secret, another id, a made-up token of the right shape.
    for forged in (secret[:-1] + ("A" if secret[-1] != "A" else "B"), "arc_00000000_" + "x" * 43):
        with pytest.raises(AuthError) as caught:
            users.authenticate(forged)
        assert forged not in str(caught.value) and secret not in str(caught.value)
    users.revoke(info.id)
    with pytest.raises(AuthError, match="revoked"):
        users.authenticate(secret)
    assert users.tokens()[0].status == "revoked"
    with pytest.raises(NotFoundError):
        users.revoke("ffffffff")


def test_expired_token_and_removed_user(cat: Catalog) -> None:
    users = cat.users
    users.add("carol", "reader")
    info, secret = users.create_token("carol", expires_days=1)
    users.authenticate(secret)
    cat.backend._auth_run(  # type: ignore[attr-defined]
        "UPDATE tokens SET expires_at = ? WHERE id = ?",
        ["2000-01-01T00:00:00+00:00", info.id],
        write=True,
    )
    with pytest.raises(AuthError, match="expired"):
        users.authenticate(secret)
    _, other = users.create_token("carol")
    users.set_role("carol", "admin")
    assert users.authenticate(other)[0].role == "admin"
    users.remove("carol")
    assert _rows(cat, "tokens") == [] and users.list() == []
    with pytest.raises(AuthError):
        users.authenticate(other)


def _app(root: Path) -> TestClient:
    from arcodex.server import create_app

    return TestClient(create_app(root))


def _dataset(cat: Catalog, tmp_path: Path, name: str, *, published: bool) -> str:
    (record,) = cat.add_files([_netcdf(tmp_path / f"{name}.nc", 10.0, "2030-01-01")])
    cat.update(
        record.id, title=name, set={"access.published": published, "access.visibility": "public"}
    )
    return record.id


def _search_ids(client: TestClient, headers: dict[str, str] | None = None) -> set[str]:
    resp = client.get("/stac/search", params={"limit": 100}, headers=headers or {})
    assert resp.status_code == 200, resp.text
    return {f["id"] for f in resp.json()["features"]}


def test_bearer_tokens_over_http(
    tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Catalog.create(tmp_path / "cat", config=_config(request)) as cat:
        shown = _dataset(cat, tmp_path, "shown", published=True)
        draft = _dataset(cat, tmp_path, "draft", published=False)
        cat.users.add("w", "writer")
        _, secret = cat.users.create_token("w")
        info, revoked = cat.users.create_token("w")
        cat.users.revoke(info.id)
    with _app(tmp_path / "cat") as client:
        assert _search_ids(client) == {shown}
        assert _search_ids(client, {"Authorization": f"Bearer {secret}"}) == {shown, draft}
        for bad in (revoked, secret[:-2] + "zz", "not-a-token", "a.b.c"):
            resp = client.get("/stac/search", headers={"Authorization": f"Bearer {bad}"})
            assert resp.status_code == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert bad not in resp.text and secret not in resp.text
            assert len(resp.json()["description"].splitlines()) == 1
        resp = client.get("/stac/search", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert resp.status_code == 401
    events = "".join(p.read_text() for p in (tmp_path / "cat").rglob("*.jsonl"))
    for text in (caplog.text, events):
        assert secret not in text and revoked not in text


def test_anonymous_reads_off_and_rate_limit(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = _config(request, auth={"anonymous_read": False, "rate_limit": 3})
    with Catalog.create(tmp_path / "cat", config=config) as cat:
        cat.users.add("r", "reader")
        _, secret = cat.users.create_token("r")
        _, other = cat.users.create_token("r")
    with _app(tmp_path / "cat") as client:
        resp = client.get("/stac/collections")
        assert resp.status_code == 401 and "token" in resp.json()["description"]
        headers = {"Authorization": f"Bearer {secret}"}
        assert [client.get("/stac/", headers=headers).status_code for _ in range(3)] == [200] * 3
        resp = client.get("/stac/", headers=headers)
        assert resp.status_code == 429 and 1 <= int(resp.headers["Retry-After"]) <= 60
        assert secret not in resp.text
        # The limit is per token: another token of the same user goes on.
        assert client.get("/stac/", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_request_user_is_the_user_of_events(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from arcodex.server import create_app
    from arcodex.server._identity import require

    with Catalog.create(tmp_path / "cat", config=_config(request)) as cat:
        rid = _dataset(cat, tmp_path, "x", published=True)
        cat.users.add("wanda", "writer")
        _, secret = cat.users.create_token("wanda")
    app = create_app(tmp_path / "cat")

    from fastapi import Depends

    def touch(principal: Any = Depends(require("writer"))) -> dict[str, str]:
        # A sync route: FastAPI runs it in a worker thread, which must still act as the user.
        app.state.catalog.update(rid, add_tags=["touched"])
        return {"ok": "yes"}

    app.add_api_route("/touch", touch, methods=["POST"])
    with TestClient(app) as client:
        assert client.post("/touch").status_code == 401
        resp = client.post("/touch", headers={"Authorization": f"Bearer {secret}"})
        assert resp.status_code == 200, resp.text
        record = app.state.catalog.get(rid)
        assert "touched" in record.tags and record.updated_by == "wanda"
        assert app.state.catalog.events.query(user="wanda", record=rid)


# -- OIDC --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwks() -> Iterator[tuple[str, Any]]:
    """A loopback JWKS endpoint serving one RSA public key, and its private key."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    finally:
        server.shutdown()
        server.server_close()


ISSUER, AUDIENCE = "https://idp.example", "arcodex-test"


def _jwt(key: Any, **claims: Any) -> str:
    import jwt

    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "oscar",
        "exp": now + 300,
        "iat": now,
        "arcodex_role": "writer",
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def test_oidc_tokens(tmp_path: Path, request: pytest.FixtureRequest, jwks: tuple[str, Any]) -> None:
    import base64

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    url, key = jwks
    oidc = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": url}
    with Catalog.create(tmp_path / "cat", config=_config(request, auth={"oidc": oidc})) as cat:
        shown = _dataset(cat, tmp_path, "shown", published=True)
        draft = _dataset(cat, tmp_path, "draft", published=False)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"k1"}').rstrip(b"=")
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "oscar", "exp": int(time.time()) + 300}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    unsigned = f"{header.decode()}.{body.decode()}."
    with _app(tmp_path / "cat") as client:
        good = _jwt(key)
        assert _search_ids(client, {"Authorization": f"Bearer {good}"}) == {shown, draft}
        reader = _jwt(key, arcodex_role="reader")
        assert _search_ids(client, {"Authorization": f"Bearer {reader}"}) == {shown}
        bad = {
            "issuer": _jwt(key, iss="https://evil.example"),
            "audience": _jwt(key, aud="someone-else"),
            "expired": _jwt(key, exp=int(time.time()) - 60),
            "signature": jwt.encode(
                {**claims, "arcodex_role": "admin"}, other, algorithm="RS256", headers={"kid": "k1"}
            ),
            "none": unsigned,
        }
        for what, token in bad.items():
            resp = client.get("/stac/search", headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 401, what
            assert token not in resp.text and "WWW-Authenticate" in resp.headers, what
