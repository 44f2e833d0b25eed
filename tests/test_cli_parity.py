"""CLI/API parity: every command is a call of public Catalog methods, and every
public Catalog method is either reachable from the CLI or listed here as API-only."""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from arcodex.catalog import Catalog
from arcodex.cli import COMMAND_METHODS, ENGINE_COMMANDS, app

#: Public Catalog methods with no command, and why. A new public method fails
#: ``test_every_public_method_has_a_command`` until it gets a command or a line here.
API_ONLY = {
    "ids": "ids-only search without reading records, for stores and scripts listing many",
    "open": "lifecycle: the CLI opens the catalog from --catalog / $ARCODEX_CATALOG / cwd",
    "close": "lifecycle: every command closes the catalog it opened",
    "add_file": "one-file form of add_files, which `arcodex add` calls",
    "add_external": "one-URI form of add_externals, which `arcodex add --external` calls",
    "add_bytes": "adds bytes held in memory; a command has files (add_files) instead",
    "add_records": "adds prepared records; for converters and plugins, not people",
    "unit_of_work": "the boundary that commands run inside, for plugins and converters",
    "operations": "the operation log gets its own command group with the journal work",
    "storage": "the objects of a profile, for the conversion engine and plugins",
}


def test_groups_are_keyed_by_their_path() -> None:
    assert {"schema list", "schema add", "schema show"} <= set(COMMAND_METHODS)
    assert {"schema list", "schema show"} <= _registered_commands()
    assert "schema" not in _registered_commands()


#: One invocation per (command, method) pair; ``{rid}`` is a record's id.
INVOCATIONS: list[tuple[list[str], set[str]]] = [
    (["init", "{new}"], {"create", "info"}),
    (["add", "{file}", "--allow-duplicate"], {"add_files"}),
    (["add", "--external", "https://example.org/x"], {"add_externals"}),
    (["search", "x=1"], {"search"}),
    (["search", "--count"], {"count"}),
    (["show", "{rid}"], {"get", "locate"}),
    (["path", "{rid}"], {"get", "path"}),
    (["update", "{rid}", "--set", "x=2"], {"update"}),
    (["delete", "{rid}"], {"delete"}),
    (["restore", "{rid}"], {"restore"}),
    (["delete", "{rid}", "--purge", "--yes"], {"get", "delete"}),
    (["purge", "{rid2}", "--yes"], {"get", "purge"}),
    (["info"], {"info"}),
    (["fields"], {"fields"}),
    (["logs", "--level", "error"], {"logs"}),
    (["schema", "list"], {"list_schemas"}),
    (["schema", "add", "obs@1", "{schema}"], {"register_schema"}),
    (["schema", "show", "rec@1"], {"get_schema"}),
    (["schemas"], {"list_schemas"}),
    (["doctor"], {"doctor"}),
    (["extract", "{file}", "--json"], {"extract"}),
    (["recover", "--dry-run"], {"recover"}),
    (["validate", "{rid}"], {"validate"}),
    (["schema-add", "obs@1", "{schema}"], {"register_schema"}),
    (["add", "{file}", "--dry-run", "--allow-duplicate"], {"plan_add"}),
    (["run", "add", "{file}", "--param", "allow_duplicate=true"], {"run_pipeline"}),
    (["run", "--list"], {"pipelines"}),
    (["pipelines"], {"pipelines"}),
    (["ingest-files", "{file}", "--dry-run"], {"ingest_files"}),
    (["publish", "d1", "--visibility", "public"], {"get", "publish"}),
    (["unpublish", "d1"], {"unpublish"}),
    (["visibility", "d1", "project:ch4"], {"set_visibility"}),
]


def _public_methods() -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(Catalog)
        if not name.startswith("_") and callable(value)
    }


def _registered_commands() -> set[str]:
    """Every command, a command inside a group as ``"GROUP NAME"``; an engine group
    (``stac``) counts as one."""
    found: set[str] = set()

    def walk(command: Any, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            path = f"{prefix}{name}"
            if getattr(sub, "commands", None) and path not in ENGINE_COMMANDS:
                walk(sub, f"{path} ")
            else:
                found.add(path)

    walk(typer.main.get_command(app), "")
    return found


def _command_of(argv: list[str]) -> str:
    """The command an invocation runs: ``["schema", "add", …]`` runs ``"schema add"``."""
    if len(argv) > 1 and f"{argv[0]} {argv[1]}" in COMMAND_METHODS:
        return f"{argv[0]} {argv[1]}"
    return argv[0]


def test_every_command_is_mapped() -> None:
    # Engine commands (convert, check, the stac group, serve, find, open) call
    # arcodex.convert, .stac, .server, .client and .stores, which have their own tests;
    # the plugins group calls arcodex.plugins, the group group arcodex.groups, the db
    # group arcodex.catalog's database functions (on a database the catalog cannot open);
    # user and token call catalog.users (tests/test_auth.py); templates and extents call
    # arcodex.ingest's loading (tests/test_ingest_templates.py); sync calls arcodex.ingest's
    # sync (tests/test_sync.py).
    assert {
        "convert",
        "check",
        "stac",
        "serve",
        "find",
        "open",
        "plugins",
        "store",
        "group",
        "db",
        "user",
        "token",
        "ingest",
        "templates",
        "extents",
        "sync",
    } == ENGINE_COMMANDS
    assert _registered_commands() == set(COMMAND_METHODS) | ENGINE_COMMANDS


def test_every_mapped_method_is_public_on_catalog() -> None:
    public = _public_methods()
    for command, methods in COMMAND_METHODS.items():
        assert methods, f"{command} maps to no Catalog method"
        for method in methods:
            assert method in public, f"{command} maps to Catalog.{method}, which does not exist"


def test_every_public_method_has_a_command() -> None:
    mapped = {m for methods in COMMAND_METHODS.values() for m in methods}
    missing = _public_methods() - mapped - set(API_ONLY)
    assert not missing, f"public Catalog methods with no command and not in API_ONLY: {missing}"
    assert not (mapped & set(API_ONLY)), "a method is both mapped and API-only"
    assert set(API_ONLY) <= _public_methods(), "API_ONLY names a method Catalog does not have"


def test_invocations_cover_every_command() -> None:
    covered: dict[str, set[str]] = {}
    for argv, methods in INVOCATIONS:
        covered.setdefault(_command_of(argv), set()).update(methods)
    assert covered == {name: set(methods) for name, methods in COMMAND_METHODS.items()}


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the outermost public Catalog method calls (not the ones they make themselves)."""
    calls: list[str] = []
    depth = [0]

    def spy(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if depth[0] == 0:
                calls.append(name)
            depth[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1

        return call

    for name in _public_methods() - {"open", "close"}:
        static = inspect.getattr_static(Catalog, name)
        if isinstance(static, classmethod):
            monkeypatch.setattr(Catalog, name, classmethod(spy(name, static.__func__)))
        else:
            monkeypatch.setattr(Catalog, name, spy(name, static))
    return calls


@pytest.mark.parametrize(
    ("argv", "methods"), INVOCATIONS, ids=[" ".join(argv) for argv, _ in INVOCATIONS]
)
def test_commands_call_exactly_their_methods(
    tmp_path: Path, spied: list[str], argv: list[str], methods: set[str]
) -> None:
    root = tmp_path / "cat"
    data = tmp_path / "data.txt"
    data.write_text("x", encoding="utf-8")
    with Catalog.create(root) as catalog:
        catalog.register_schema("rec@1", {"type": "object"})
        catalog.add_files([data], metadata={"x": 1}, record_ids=["r1"])
        catalog.add_external("https://example.org/y", record_id="r2")
        if argv[0] == "restore":
            catalog.delete("r1")
        # A dataset whose (stand-in) product passed its check, for the publishing commands.
        catalog.add_external(
            "https://example.org/d.zarr",
            record_id="d1",
            kind="dataset",
            metadata={"convert": {"check": "pass", "product": {"format": "zarr"}}},
        )
        if argv[0] == "unpublish":
            catalog.publish("d1")
    spied.clear()
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object"}', encoding="utf-8")
    args = [
        a.format(new=tmp_path / "new", file=data, rid="r1", rid2="r2", schema=schema) for a in argv
    ]
    result = CliRunner().invoke(app, ["--catalog", str(root), *args])
    assert result.exit_code == 0, result.stderr
    assert set(spied) == methods
    assert methods <= set(COMMAND_METHODS[_command_of(argv)])


@pytest.mark.slow
def test_console_script(tmp_path: Path) -> None:
    """The installed ``arcodex`` entry point works end to end in a fresh process."""
    script = shutil.which("arcodex", path=str(Path(sys.executable).parent))
    assert script, "the arcodex console script is not installed next to this Python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCODEX_")}
    data = tmp_path / "obs.csv"
    data.write_text("t,ch4\n1,1900\n", encoding="utf-8")

    def run(*args: str) -> str:
        done = subprocess.run(
            [script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("init", "cat")
    added = json.loads(run("--catalog", "cat", "add", str(data), "--meta", "site=MHD", "--json"))
    [record] = added["records"]
    found = json.loads(run("--catalog", "cat", "search", "site=MHD", "--json"))
    assert [r["id"] for r in found["records"]] == [record["id"]]
    assert found["next_cursor"] is None

    failed = subprocess.run(
        [script, "--catalog", "cat", "show", "nope"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: no record matches 'nope'")


def test_cli_finds_catalog_from_the_same_variable() -> None:
    from arcodex.catalog import ENV_CATALOG
    from arcodex.cli._app import ENV_CATALOG as CLI_ENV_CATALOG

    assert CLI_ENV_CATALOG == ENV_CATALOG
