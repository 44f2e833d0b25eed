"""The default ``local`` cluster works however Python runs the caller's code.

Spawned worker processes re-import the main module: a script that converts at its top
level without a ``__main__`` guard, or code read from stdin, would fail to start them
("Nanny failed to start"), so arcodex runs the workers as threads there, saying so. Each
case runs in a real interpreter, as a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: Opens the default cluster and prints where its one worker runs: this process or another.
SNIPPET = """\
import os
from arcodex.convert._cluster import open_client
with open_client(workers=1) as client:
    pids = set(client.run(os.getpid).values())

print("threads" if pids == {os.getpid()} else "processes")
"""

GUARDED = "def main():\n" + "".join(f"    {line}\n" for line in SNIPPET.splitlines())
GUARDED += 'if __name__ == "__main__":\n    main()\n'


def _run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_script_without_guard_falls_back_to_threads_with_a_notice(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(SNIPPET)
    done = _run(["job.py"], tmp_path)
    assert done.stdout.split() == ["threads"]
    notices = [line for line in done.stderr.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1, done.stderr
    assert "job.py" in notices[0] and "__main__" in notices[0] and "threads" in notices[0]


def test_stdin_falls_back_to_threads(tmp_path: Path) -> None:
    done = _run(["-"], tmp_path, stdin=SNIPPET)
    assert done.stdout.split() == ["threads"]
    assert "notice:" in done.stderr and "<stdin>" in done.stderr


def test_guarded_script_keeps_processes(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(GUARDED)
    done = _run(["job.py"], tmp_path)
    assert done.stdout.split() == ["processes"]
    assert "notice:" not in done.stderr


def test_dash_c_keeps_processes(tmp_path: Path) -> None:
    done = _run(["-c", SNIPPET], tmp_path)
    assert done.stdout.split() == ["processes"]
    assert "notice:" not in done.stderr


def test_interactive_interpreter_works(tmp_path: Path) -> None:
    # What a REPL or a notebook cell does: code compiled and run in a `__main__` with no file.
    driver = (
        f"import code\ncode.InteractiveInterpreter().runsource({SNIPPET!r}, '<input>', 'exec')\n"
    )
    done = _run(["-c", driver], tmp_path)
    assert done.stdout.split() == ["processes"]
    assert "notice:" not in done.stderr


def test_python_dash_i_fed_by_stdin_works(tmp_path: Path) -> None:
    done = _run(["-q", "-i"], tmp_path, stdin=SNIPPET)
    assert "processes" in done.stdout, done.stdout + done.stderr
    assert "Error" not in done.stderr, done.stderr


PROFILER = """\
import dask
from arcodex.convert._cluster import open_client

def enabled():
    return dask.config.get("distributed.worker.profile.enabled")

def main():
    for config in ({}, {"profile": True}):
        with open_client("local", workers=1, config=config) as client:
            print(sorted(set(client.run(enabled).values())))

if __name__ == "__main__":
    main()
"""


def test_local_workers_run_without_the_profiler_unless_asked(tmp_path: Path) -> None:
    """The profiler samples every worker thread 100 times a second for a dashboard page;
    ``cluster.profile: true`` turns it back on."""
    (tmp_path / "profiler.py").write_text(PROFILER)
    done = _run(["profiler.py"], tmp_path)
    assert done.stdout.split() == ["[False]", "[True]"]
