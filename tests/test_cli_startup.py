"""The console script builds only the command it runs (typer's start-up cost is per command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arcodex.cli._app import _app_for, app


@pytest.mark.parametrize(
    ("argv", "commands"),
    [
        (["add", "x.nc"], ["add"]),
        (["--catalog", "search", "search", "--json"], ["search"]),
        (["-C", "cat", "--debug", "info"], ["info"]),
    ],
)
def test_one_command_is_built(argv: list[str], commands: list[str]) -> None:
    lean = _app_for(argv)
    assert [c.name for c in lean.registered_commands] == commands
    assert lean.registered_groups == []
    assert len(app.registered_commands) > 10  # the shared app is left whole


@pytest.mark.parametrize(
    "argv", [[], ["--help"], ["-h", "add"], ["--version"], ["stac", "export"], ["nosuch"]]
)
def test_help_groups_and_unknown_names_get_the_whole_app(argv: list[str]) -> None:
    assert _app_for(argv) is app


def test_console_script_runs_the_command(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arcodex.cli", *args], capture_output=True, text=True
        )

    assert cli("init", str(tmp_path / "cat")).returncode == 0
    note = tmp_path / "note.txt"
    note.write_text("hello")
    added = cli("--catalog", str(tmp_path / "cat"), "add", str(note), "--ids")
    assert added.returncode == 0, added.stderr
    shown = cli("--catalog", str(tmp_path / "cat"), "show", added.stdout.strip(), "--json")
    assert shown.returncode == 0 and '"note.txt"' in shown.stdout
    unknown = cli("--catalog", str(tmp_path / "cat"), "nosuch")
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr
