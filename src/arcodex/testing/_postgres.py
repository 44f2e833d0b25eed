"""A real PostgreSQL server on this machine, for tests of the ``postgres`` backend.

:func:`local_postgres` starts the machine's PostgreSQL cluster when it is down
(``pg_ctlcluster VERSION NAME start``, as root; Debian's ``postgresql`` package
is installed with apt-get when it is missing), then creates a throwaway login
role and a database it owns, both named after this process (``arcodex_t_PID``),
with a random password that reaches libpq only through ``PGPASSWORD``
(:meth:`LocalPostgres.env`). On exit both are dropped. A database left by a
process killed before it could clean up is dropped by the next one that starts.

Each pytest-xdist worker gets its own role and database; tests inside one
worker isolate themselves further with a fresh schema each
(:meth:`LocalPostgres.schema_url`). The server is shared, and never stopped:
it belongs to the machine.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "PG_OPT_OUT",
    "LocalPostgres",
    "PostgresUnavailable",
    "local_postgres",
]

#: Set to 1 to skip the PostgreSQL tests on a machine without a PostgreSQL server.
PG_OPT_OUT = "ARCODEX_SKIP_POSTGRES"
PREFIX = "arcodex_t_"
START_TIMEOUT = 60.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started or reached here (the message says why and what to do)."""


@dataclass(frozen=True)
class LocalPostgres:
    """A throwaway role and database on the machine's running server."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        """The database's URL, without the password (which only :meth:`env` carries)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def env(self) -> dict[str, str]:
        """What a process needs to connect: the password, where libpq reads it."""
        return {"PGPASSWORD": self.password}

    def schema_url(self, schema: str | None = None) -> str:
        """The database's URL with arcodex's tables in ``schema`` (a fresh name by default)."""
        name = schema or f"t_{secrets.token_hex(6)}"
        return f"{self.url}?schema={quote(name)}"

    def other_database(self, name: str) -> str:
        """The URL of another database on the same server, named ``arcodex_t_PID_NAME``
        (created when missing, dropped with this one)."""
        database = f"{self.database}_{name}"
        if not _psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'").strip():
            _psql(f"CREATE DATABASE {database} OWNER {self.user}")
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


@contextmanager
def local_postgres() -> Iterator[LocalPostgres]:
    """A role and database of this process on the machine's PostgreSQL, dropped on exit."""
    port = _start_cluster()[2]
    role = f"{PREFIX}{os.getpid()}"
    password = secrets.token_urlsafe(24)
    _drop_stale()
    _drop(role)
    _psql(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
    _psql(f"CREATE DATABASE {role} OWNER {role}")
    try:
        yield LocalPostgres("127.0.0.1", port, role, password, role)
    finally:
        _drop(role)


# -- the cluster --------------------------------------------------------------------------


def _start_cluster() -> tuple[str, str, int]:
    """The machine's first cluster, started if it is down: (version, name, port)."""
    if shutil.which("pg_lsclusters") is None:
        _install()
    with _lock():
        cluster = _cluster()
        if cluster is None:
            raise PostgresUnavailable(
                "no PostgreSQL cluster on this machine (pg_lsclusters lists none); create one"
                f" with `pg_createcluster 15 main`, or set {PG_OPT_OUT}=1 to skip these tests"
            )
        version, name, port, status = cluster
        if status != "online":
            if os.geteuid() != 0:
                raise PostgresUnavailable(
                    f"PostgreSQL {version}/{name} is down and only root can start it; run"
                    f" `sudo pg_ctlcluster {version} {name} start`, or set {PG_OPT_OUT}=1"
                )
            run = subprocess.run(
                ["pg_ctlcluster", version, name, "start"], capture_output=True, text=True
            )
            if run.returncode != 0 and "already running" not in run.stderr:
                raise PostgresUnavailable(
                    f"`pg_ctlcluster {version} {name} start` failed: {_last(run.stderr)}"
                )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            ready = subprocess.run(
                ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                return version, name, port
            if time.monotonic() > deadline:
                raise PostgresUnavailable(
                    f"PostgreSQL {version}/{name} did not accept connections on port {port}"
                    f" within {START_TIMEOUT:g}s; see /var/log/postgresql/"
                )
            time.sleep(0.2)


def _cluster() -> tuple[str, str, int, str] | None:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2].isdigit():
            return parts[0], parts[1], int(parts[2]), parts[3]
    return None


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable(
            "PostgreSQL is not installed; install Debian's `postgresql` package (as root:"
            f" apt-get install postgresql), or set {PG_OPT_OUT}=1 to skip these tests"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run = subprocess.run(
        ["apt-get", "install", "-y", "-q", "postgresql"], capture_output=True, text=True, env=env
    )
    if run.returncode != 0:
        raise PostgresUnavailable(f"apt-get install postgresql failed: {_last(run.stderr)}")


@contextmanager
def _lock() -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"arcodex-postgres-{os.getuid()}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- roles and databases ------------------------------------------------------------------


def _psql(sql: str) -> str:
    """Run ``sql`` as the server's superuser (through the local socket, as ``postgres``)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", "psql"]
    elif _whoami() == "postgres":
        command = ["psql"]
    else:
        raise PostgresUnavailable(
            "creating a test role needs the server's superuser: run the tests as root or as"
            f" postgres, or set {PG_OPT_OUT}=1 to skip them"
        )
    run = subprocess.run(
        [*command, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql],
        capture_output=True,
        text=True,
        cwd="/",
    )
    if run.returncode != 0:
        raise PostgresUnavailable(f"psql failed: {_last(run.stderr)}")
    return run.stdout


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _drop(role: str) -> None:
    databases = _psql(
        f"SELECT datname FROM pg_database WHERE datname = '{role}' OR datname LIKE '{role}\\_%'"
    ).split()
    for database in databases:
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    _psql(f"DROP ROLE IF EXISTS {role}")


def _drop_stale() -> None:
    """Roles (and their databases) of test processes that are gone."""
    roles = _psql(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{PREFIX}%'").split()
    for role in roles:
        pid = role.removeprefix(PREFIX)
        if pid.isdigit() and not _alive(int(pid)):
            _drop(role)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
