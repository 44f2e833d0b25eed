"""Break an add twice, on purpose, and watch arcodex put the catalog right.

Run from the repository root: ``.venv/bin/python examples/rollback-demo/rollback.py``.
Everything is written under ``examples/rollback-demo/output/`` (ignored by git).

The failures come from arcodex's own failure-injection switches, which tests use
and production never sets: ``ARCODEX_FAIL_AT=STATE`` raises right after the
journal records STATE, ``ARCODEX_KILL_AT=STATE`` SIGKILLs the process there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "output"
CAT = OUT / "catalog"
shutil.rmtree(OUT, ignore_errors=True)
OUT.mkdir(parents=True)


def arcodex(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would in a shell, and print what it says."""
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"\n$ {shown + ' ' if shown else ''}arcodex {' '.join(args)}")
    done = subprocess.run(
        [sys.executable, "-m", "arcodex", "--catalog", str(CAT), *args],
        env={**os.environ, "COLUMNS": "120", **env},  # wide enough not to wrap lines
        capture_output=True,
        text=True,
    )
    if said := (done.stdout + done.stderr).rstrip():
        print(said)
    print("[killed by SIGKILL]" if done.returncode == -9 else f"[exit status {done.returncode}]")
    return done


def stored_files() -> list[str]:
    return sorted(p.name for p in (CAT / "store").rglob("*") if p.is_file())


def count_records() -> int:
    found = subprocess.run(
        [sys.executable, "-m", "arcodex", "--catalog", str(CAT), "search", "--ids"],
        capture_output=True,
        text=True,
        check=True,
    )
    return len(found.stdout.split())


subprocess.run([sys.executable, "-m", "arcodex", "init", str(CAT)], check=True, capture_output=True)
for name in ("a", "b", "c"):
    (OUT / f"{name}.csv").write_text(f"name,value\n{name},1\n")

# 1. A failure after the file was copied into the store, before the record was
#    written. The unit of work runs its rollback actions in reverse: the copy goes.
arcodex("add", str(OUT / "a.csv"), ARCODEX_FAIL_AT="artifact_write_succeeded")
(journal,) = (CAT / "state" / "journal" / "done").glob("*.jsonl")
states = [json.loads(line)["state"] for line in journal.read_text().splitlines()]
print("journal of that add:", " -> ".join(s for s in states if not s.startswith("step_")))
print("files in the store:", stored_files(), "records:", count_records())

# 2. A kill at the same point: no code runs after SIGKILL, so nothing is undone
#    and the journal stays open. doctor finds it (exit 1) and says what to run.
arcodex("add", str(OUT / "b.csv"), ARCODEX_KILL_AT="artifact_write_succeeded")
print("files in the store:", stored_files())
arcodex("doctor")
# recover reads the journal: the record never reached the database, so it rolls
# back, removing only the file that operation wrote. --dry-run says what it would do.
arcodex("recover", "--dry-run")
arcodex("recover")
print("files in the store:", stored_files(), "records:", count_records())

# 3. A kill after the record was committed: recover rolls forward instead,
#    finishing the operation, and the record stays.
arcodex("add", str(OUT / "c.csv"), ARCODEX_KILL_AT="catalog_write_succeeded")
arcodex("recover")
print("files in the store:", len(stored_files()), "records:", count_records())

# Nothing left to repair, and the event log kept what went wrong and what was done.
arcodex("doctor")
arcodex("logs", "--level", "warning")
