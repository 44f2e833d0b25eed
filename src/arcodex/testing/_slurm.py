"""A real one-node SLURM cluster on this machine, for tests of ``cluster: slurm``.

:func:`local_slurm` installs Debian's ``slurm-wlm`` and ``munge`` when they are
missing (as root, with apt-get), then starts munged, slurmctld and slurmd on
localhost from a generated ``slurm.conf`` in one run directory (by default
``$TMPDIR/arcodex-slurm-UID``): no cgroups, ``proctrack/linuxproc``, one node
``localhost`` with this machine's cores, the partition ``debug`` and a
partition ``down`` that queues jobs but never starts them. Commands reach it
through ``SLURM_CONF`` (:meth:`LocalSlurm.env`); nothing under ``/etc`` is used.

One cluster serves every process that asks for it at the same time (the
pytest-xdist workers of one run, or two runs side by side): each takes a file
lock on the run directory, starts the daemons unless they already answer, and
writes its pid under ``users/``. The last user out cancels every job and stops
the daemons; a user killed without cleaning up is noticed by the next one
(its pid is gone), which reuses the running daemons or starts them again.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OPT_OUT", "LocalSlurm", "SlurmUnavailable", "install_slurm", "local_slurm"]

#: Set to 1 to skip the SLURM tests on a machine where SLURM cannot be installed.
OPT_OUT = "ARCODEX_SKIP_SLURM"
PACKAGES = ("slurm-wlm", "munge")
COMMANDS = ("sbatch", "squeue", "scancel", "sinfo", "scontrol", "slurmctld", "slurmd", "munged")
DAEMONS = ("slurmd", "slurmctld", "munged")  # the order they stop in
NODE = "localhost"
START_TIMEOUT = 30.0


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here (the message says why and what to do)."""


@dataclass(frozen=True)
class LocalSlurm:
    """A running one-node cluster: its run directory and how commands reach it."""

    root: Path
    partition: str = "debug"
    #: A partition that accepts jobs and never runs them (jobs that never start).
    down_partition: str = "down"

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    def env(self) -> dict[str, str]:
        """The environment variables that point SLURM's commands at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def jobs(self, name: str | None = None) -> list[str]:
        """The ids of the jobs in the queue now (pending, running or completing), or of those
        named ``name``."""
        named = ("--name", name) if name else ()
        return _slurm_command(self.root, "squeue", "-h", "-o", "%i", *named).split()


def install_slurm() -> None:
    """Install slurm-wlm and munge with apt-get when their commands are missing.

    Raises:
        SlurmUnavailable: they are missing and cannot be installed here.
    """
    if not _missing():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SlurmUnavailable(
            f"SLURM is not installed ({', '.join(_missing())} missing) and only root on Debian "
            f"can install it here: run `apt-get install -y {' '.join(PACKAGES)}` as root, "
            f"or set {OPT_OUT}=1 to skip the SLURM tests"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or _missing():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SlurmUnavailable(f"`{' '.join(install)}` failed: {last}")


@contextmanager
def local_slurm(root: Path | str | None = None) -> Iterator[LocalSlurm]:
    """A one-node SLURM cluster, started unless it runs already, stopped by its last user."""
    install_slurm()
    cluster = LocalSlurm(Path(root) if root is not None else _default_root())
    cluster.root.mkdir(parents=True, exist_ok=True)
    me = cluster.root / "users" / str(os.getpid())
    with _locked(cluster.root):
        users = _live_users(cluster.root)
        if not _answers(cluster.root):
            _stop(cluster.root)
            _start(cluster.root)
        elif not users:  # a run killed before it cleaned up: its jobs are strays
            _cancel_all(cluster.root)
        me.parent.mkdir(exist_ok=True)
        me.write_text(_start_time(os.getpid()) or "")
    try:
        yield cluster
    finally:
        with _locked(cluster.root):
            me.unlink(missing_ok=True)
            if not _live_users(cluster.root):
                _cancel_all(cluster.root)
                _stop(cluster.root)


# -- the run directory and who uses it ---------------------------------------------------


def _default_root() -> Path:
    return Path(tempfile.gettempdir()) / f"arcodex-slurm-{os.getuid()}"


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _live_users(root: Path) -> list[int]:
    """The pids of the processes using the cluster now (files of dead ones are removed)."""
    live = []
    for path in (root / "users").glob("*") if (root / "users").is_dir() else []:
        recorded, now = path.read_text(), _start_time(int(path.name))
        if now is None or (recorded and now != recorded):
            path.unlink(missing_ok=True)  # gone, or its pid taken by another process since
        else:
            live.append(int(path.name))
    return live


# -- the daemons -------------------------------------------------------------------------


def _start(root: Path) -> None:
    for name in ("etc", "munge", "state", "spool", "log"):
        (root / name).mkdir(exist_ok=True)
    # munged insists: its key private to its user, its socket's directory searchable by all.
    (root / "etc").chmod(0o700)
    (root / "munge").chmod(0o755)
    key = root / "etc" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    shutil.rmtree(root / "state")  # a fresh controller: no jobs or nodes of an earlier run
    (root / "state").mkdir()
    (root / "etc" / "slurm.conf").write_text(_slurm_conf(root))
    conf = str(root / "etc" / "slurm.conf")
    _daemon(
        root,
        "munged",
        f"--socket={root / 'munge' / 'munge.socket'}",
        f"--key-file={key}",
        f"--pid-file={root / 'munge' / 'munged.pid'}",
        f"--seed-file={root / 'etc' / 'munged.seed'}",
        f"--log-file={root / 'log' / 'munged.log'}",
    )
    _daemon(root, "slurmctld", "-f", conf, "-c")
    _daemon(root, "slurmd", "-f", conf, "-N", NODE)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(root):
            return
        time.sleep(0.2)
    logs = "; ".join(f"{d}: {_last_line(root / 'log' / f'{d}.log')}" for d in DAEMONS)
    _stop(root)
    raise SlurmUnavailable(
        f"the local SLURM cluster did not start in {START_TIMEOUT:.0f} s ({logs})"
    )


def _slurm_conf(root: Path) -> str:
    ctld, slurmd = _free_ports(2)
    cores = os.cpu_count() or 1
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    user = getpass.getuser()
    return f"""\
# Generated by arcodex.testing for its SLURM tests; the whole cluster lives in {root}.
ClusterName=arcodex
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={root / "munge" / "munge.socket"}
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
KillWait=5
MinJobAge=60
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cores} RealMemory={min(memory_mb, 8192)} State=UNKNOWN
PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=down Nodes={NODE} MaxTime=INFINITE State=DOWN
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _daemon(root: Path, name: str, *args: str) -> None:
    """Start one daemon (it forks into the background and writes its pid file)."""
    command = _command(name)
    with open(root / "log" / f"{name}.out", "ab") as out:
        done = subprocess.run(
            [command, *args],
            env=_env(root),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SlurmUnavailable(
            f"{name} did not start: {_last_line(root / 'log' / f'{name}.log')} (see {root / 'log'})"
        )


def _pid_files(root: Path) -> dict[str, Path]:
    return {
        "slurmd": root / "slurmd.pid",
        "slurmctld": root / "slurmctld.pid",
        "munged": root / "munge" / "munged.pid",
    }


def _our_pid(root: Path, name: str) -> int | None:
    """The pid of our daemon ``name`` if it runs (its pid file names a live process of ours)."""
    try:
        pid = int(_pid_files(root)[name].read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    if _start_time(pid) is None or name not in cmdline or str(root) not in cmdline:
        return None
    return pid


def _answers(root: Path) -> bool:
    """Whether all three daemons run and the node takes jobs."""
    if any(_our_pid(root, name) is None for name in DAEMONS):
        return False
    try:
        state = _slurm_command(root, "sinfo", "-h", "-n", NODE, "-p", "debug", "-o", "%T")
    except SlurmUnavailable:
        return False
    return state.strip().rstrip("*") in ("idle", "mixed", "allocated", "completing")


def _cancel_all(root: Path) -> None:
    """Cancel every job and wait (briefly) until the queue is empty."""
    if _our_pid(root, "slurmctld") is None:
        return
    try:
        _slurm_command(root, "scancel", "--full", "--user", getpass.getuser())
        deadline = time.monotonic() + 15
        while _slurm_command(root, "squeue", "-h", "-o", "%i").split():
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except SlurmUnavailable:
        pass


def _stop(root: Path) -> None:
    """Stop whichever of our daemons run (TERM, then KILL after 10 s)."""
    for name in DAEMONS:
        pid = _our_pid(root, name)
        if pid is None:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if _start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)


# -- commands ----------------------------------------------------------------------------


def _missing() -> list[str]:
    return [name for name in COMMANDS if _find(name) is None]


def _find(name: str) -> str | None:
    # slurmctld, slurmd and munged are in /usr/sbin, which a user's PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def _command(name: str) -> str:
    found = _find(name)
    if found is None:
        raise SlurmUnavailable(f"{name} is not installed; run `apt-get install -y slurm-wlm`")
    return found


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(root / "etc" / "slurm.conf")}


def _slurm_command(root: Path, name: str, *args: str) -> str:
    try:
        done = subprocess.run(
            [_command(name), *args],
            env=_env(root),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmUnavailable(f"{name} did not answer in 30 s") from exc
    if done.returncode != 0:
        raise SlurmUnavailable(f"{name} failed: {done.stderr.strip()}")
    return done.stdout


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"
