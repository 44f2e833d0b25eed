"""stac-fastapi-pgstac serving items from pgstac: the baseline of ``stac_bench.py``'s /search.

Everything it needs is set up here, outside the repository's environment:

- PostGIS for the machine's PostgreSQL 15 (Debian's ``postgresql-15-postgis-3``,
  installed with apt-get when missing; needs root);
- pypgstac and stac-fastapi-pgstac in their own virtual environment under
  ``~/.cache/arcodex-bench`` (``pip install`` from the configured index when absent);
- a database of its own on the server (``LocalPostgres.other_database``, dropped with
  the benchmark's role), where the superuser creates the extensions pgstac needs and
  the benchmark's own role (no superuser; a member of pgstac's roles, which the superuser
  makes) runs
  ``pypgstac migrate`` and ``pypgstac load``.

The server runs as ``uvicorn stac_fastapi.pgstac.app:app --workers N``, as its
documentation deploys it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

PACKAGES = ["pypgstac[psycopg]", "stac-fastapi-pgstac", "uvicorn"]
POSTGIS = "postgresql-15-postgis-3"
COLLECTION = "bench"
#: The roles ``pypgstac migrate`` creates; cluster-wide, so dropped when the benchmark ends.
PGSTAC_ROLES = ["pgstac_ingest", "pgstac_read", "pgstac_admin"]


def superuser_psql(sql: str, database: str = "postgres") -> str:
    """``sql`` as the server's superuser through the local socket (we are root)."""
    done = subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        cwd="/",
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql as postgres failed: {done.stderr.strip()}")
    return done.stdout


def run(command: list[str], **kwargs: Any) -> None:
    """Run ``command``; its own error output when it fails."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise SystemExit(f"{' '.join(command[:3])} … failed ({done.returncode}): {tail}")


def ensure_postgis() -> float | None:
    """PostGIS for PostgreSQL 15, installed with apt-get when missing; the install time."""
    control = Path("/usr/share/postgresql/15/extension/postgis.control")
    if control.exists():
        return None
    if os.geteuid() != 0:
        raise SystemExit(f"pgstac needs PostGIS: install {POSTGIS} (as root) and run again")
    t0 = time.perf_counter()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", POSTGIS], check=True, env=env,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - t0


def ensure_venv(venv: Path) -> tuple[Path, float | None, dict[str, str]]:
    """The pgstac virtual environment (created when absent): python, install time, versions."""
    python = venv / "bin" / "python"
    took = None
    if not (venv / "bin" / "pypgstac").exists():
        from group_bench import find_python312

        t0 = time.perf_counter()
        subprocess.run([find_python312(), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PACKAGES], check=True,
                       capture_output=True)  # fmt: skip
        took = time.perf_counter() - t0
    script = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "['pypgstac', 'stac-fastapi-pgstac', 'uvicorn']}))"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    return python, took, json.loads(out.stdout)


def pgstac_items(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The benchmark's items as pgstac holds them: one Collection, ``site`` a property
    (where a STAC API's CQL2 filter finds it; arcodex reads it from the record)."""
    for item in items:
        doc = {k: v for k, v in item.items() if k not in ("arcodex:metadata", "links")}
        doc["collection"] = COLLECTION
        doc["properties"] = {**item["properties"], "site": item["arcodex:metadata"]["site"]}
        doc["assets"] = dict(item.get("assets", {}).items())
        yield doc


def collection_doc() -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": COLLECTION,
        "description": "the records of arcodex's catalog benchmark",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2000-01-01T00:00:00Z", None]]},
        },
        "links": [],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def pgstac_server(
    pg: Any, items: list[dict[str, Any]], venv: Path, workers: int, report: dict[str, Any]
) -> Iterator[str]:
    """stac-fastapi-pgstac over the items, loaded by pypgstac; yields its base URL."""
    import httpx

    took = ensure_postgis()
    report["postgis_install_s"] = took
    python, venv_took, versions = ensure_venv(venv)
    report["venv_install_s"] = venv_took
    report["versions"] = versions
    url = pg.other_database("pgstac")
    database = url.rsplit("/", 1)[1]
    # pgstac's extensions come from the superuser; pgstac's roles from the role (CREATEROLE).
    for extension in ("postgis", "btree_gist", "unaccent"):
        superuser_psql(f"CREATE EXTENSION IF NOT EXISTS {extension}", database)
    superuser_psql(f"ALTER ROLE {pg.user} CREATEROLE")  # pgstac's migration creates roles
    for role in PGSTAC_ROLES:  # made by the superuser, so that the role may SET ROLE to them
        superuser_psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role}; END IF; END $$"
        )
        superuser_psql(f"GRANT {role} TO {pg.user} WITH ADMIN OPTION")
    env = {**os.environ, **pg.env()}
    bindir = venv / "bin"
    work = Path(tempfile.mkdtemp(prefix="arcodex-pgstac-"))
    proc = None
    try:
        t0 = time.perf_counter()
        run([str(bindir / "pypgstac"), "migrate", "--dsn", url], env=env, cwd=work)
        report["migrate_s"] = time.perf_counter() - t0
        (work / "collection.json").write_text(json.dumps(collection_doc()))
        with open(work / "items.ndjson", "w") as f:
            for doc in pgstac_items(items):
                f.write(json.dumps(doc) + "\n")
        t0 = time.perf_counter()
        for table, path in (("collections", "collection.json"), ("items", "items.ndjson")):
            run(
                [str(bindir / "pypgstac"), "load", table, str(work / path), "--dsn", url,
                 "--method", "insert"],
                env=env, cwd=work,
            )  # fmt: skip
        report["load_s"] = time.perf_counter() - t0
        superuser_psql("VACUUM ANALYZE", database)
        port = free_port()
        server_env = {
            **env,
            "PGUSER": pg.user,
            "PGHOST": pg.host,
            "PGPORT": str(pg.port),
            "PGDATABASE": database,
            "ENABLED_EXTENSIONS": "query,sort,fields,filter,pagination,collection_search",
        }
        proc = subprocess.Popen(
            [str(python), "-m", "uvicorn", "stac_fastapi.pgstac.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--log-level", "error"],
            env=server_env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"stac-fastapi-pgstac exited: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(base, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("stac-fastapi-pgstac did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def drop_pgstac_roles() -> None:
    """pgstac's cluster-wide roles, once the databases using them are gone (errors ignored:
    another database of the cluster may still use them)."""
    for role in PGSTAC_ROLES:
        with suppress(RuntimeError):
            superuser_psql(f"DROP ROLE IF EXISTS {role}")
