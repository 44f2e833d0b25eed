"""The CLI as a new user meets it: one-line usage errors, ``--debug`` anywhere, ``open`` by
prefix and ``ID@TAG``, empty subsets, malformed terms, a bad catalog setting, a busy port,
tables at 80 columns, and a description for every option."""

from __future__ import annotations

import enum
import os
import re
import socket
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

from arcodex._archives import write_archive
from arcodex.catalog import Catalog
from arcodex.cli import EXIT_INTERNAL, app
from arcodex.errors import ArcodexWarning, EmptySubsetWarning

runner = CliRunner()

#: A title too long for 80 columns, and a metadata date at midnight.
LONG_TITLE = "A very long title for a dataset, long enough to wrap any table at eighty columns"


def cli(*args: str, catalog: Path | None = None, **env: str) -> Result:
    argv = ["--catalog", str(catalog), *args] if catalog is not None else list(args)
    return runner.invoke(app, argv, env={"COLUMNS": "80", **env})


def ok(*args: str, catalog: Path | None = None) -> Result:
    result = cli(*args, catalog=catalog)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def one_line(result: Result, code: int) -> str:
    """The one line a failed command printed on stderr (icechunk's Rust log lines aside)."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ARCODEX_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def products(
    tmp_path_factory: pytest.TempPathFactory, module_catalog_backend: None
) -> tuple[Path, dict[str, str]]:
    """A catalog with an Icechunk product tagged v1 (then appended to), a Zarr product
    and a NetCDF file with a long title and metadata."""
    from arcodex.convert import convert, update

    root = tmp_path_factory.mktemp("ux")
    ids: dict[str, str] = {}
    with Catalog.create(root / "cat") as cat:
        files = write_archive(root / "ice", "regular", files=3, steps=2)
        first = convert(
            [str(f) for f in files[:2]], to="icechunk", catalog=cat, cluster="threads", tag="v1"
        )
        assert first.record is not None
        ids["icechunk"] = first.record.id
        update(ids["icechunk"], [str(f) for f in files], catalog=cat, cluster="threads")
        zarr = convert(
            [str(f) for f in write_archive(root / "zarr", "regular", files=1, steps=3)],
            to="zarr",
            catalog=cat,
            cluster="threads",
        )
        assert zarr.record is not None
        ids["zarr"] = zarr.record.id
        [added] = cat.add_files(
            [write_archive(root / "plain", "packed", files=1)[0]],
            metadata={"site": "MHD", "surveyed": "2019-06-01T00:00:00Z"},
            title=LONG_TITLE,
        )
        ids["netcdf"] = added.id
    return root / "cat", ids


# -- usage errors: one line, exit 2 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["search", "--bogus"],
            "error: no such option '--bogus' for 'arcodex search' (did you mean --bbox?); "
            "run 'arcodex search --help'",
        ),
        (["show"], "error: missing argument 'ID' for 'arcodex show'; run 'arcodex show --help'"),
        (
            ["add", "x", "--schema-policy", "loud"],
            "error: invalid value for '--schema-policy': 'loud' is not one of 'off', 'warn', "
            "'strict'; run 'arcodex add --help'",
        ),
        (["convert", "x", "--to", "gold"], "'gold' is not one of 'zarr', 'icechunk', 'virtual'"),
        (["serch"], "error: no such command 'serch' for 'arcodex' (did you mean 'search'"),
        (
            ["search", "--limit"],
            "error: option '--limit' requires an argument; run 'arcodex search",
        ),
        (
            ["stac", "validate", "--bogus"],
            "error: no such option '--bogus' for 'arcodex stac validate'; "
            "run 'arcodex stac validate --help'",
        ),
        (["stac", "schemas", "nope"], "no such command 'nope' for 'arcodex stac schemas'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    Catalog.create(tmp_path / "cat").close()
    line = one_line(cli(*args, catalog=tmp_path / "cat"), 2)
    assert expected in line
    assert "╭" not in line and "Usage:" not in line


def test_a_group_without_a_command_shows_its_help() -> None:
    result = cli("stac")
    assert result.exit_code == 2
    assert "validate" in result.stdout + result.stderr


# -- --debug before or after the command ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--debug", "show", "zzz"],
        ["show", "zzz", "--debug"],
        ["search", "site==MHD", "--debug"],
        ["stac", "validate", "zzz", "--debug"],
        ["logs", "--level", "loud", "--debug"],
    ],
)
def test_debug_works_after_the_command_too(tmp_path: Path, args: list[str]) -> None:
    Catalog.create(tmp_path / "cat").close()
    result = cli(*args, catalog=tmp_path / "cat")
    assert result.exit_code == 1, result.stderr
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    plain = cli(*[a for a in args if a != "--debug"], catalog=tmp_path / "cat")
    assert "Traceback" not in plain.stderr
    one_line(plain, 1)


def test_an_internal_error_says_debug_and_debug_after_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Catalog) -> None:
        raise RuntimeError("boom")

    Catalog.create(tmp_path / "cat").close()
    monkeypatch.setattr(Catalog, "info", boom)
    line = one_line(cli("info", catalog=tmp_path / "cat"), EXIT_INTERNAL)
    assert "run again with --debug" in line
    result = cli("info", "--debug", catalog=tmp_path / "cat")
    assert result.exit_code == EXIT_INTERNAL and "Traceback" in result.stderr


def test_every_command_takes_debug() -> None:
    for path, command in _commands():
        if getattr(command, "commands", None):
            continue  # a group: its commands take it
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        assert "--debug" in options, " ".join(path)


# -- open: prefixes, ID@TAG, hints, empty subsets ---------------------------------------------


def test_open_takes_an_id_prefix_and_id_at_tag(products: tuple[Path, dict[str, str]]) -> None:
    import json

    root, ids = products
    prefix = ids["icechunk"][:14]
    latest = json.loads(ok("open", prefix, "--json", catalog=root).stdout)
    assert latest["id"] == ids["icechunk"] and latest["dims"]["time"] == 6
    tagged = json.loads(ok("open", f"{prefix}@v1", "--json", catalog=root).stdout)
    assert tagged["id"] == f"{ids['icechunk']}@v1" and tagged["dims"]["time"] == 4
    full = json.loads(ok("open", f"{ids['icechunk']}@v1", "--json", catalog=root).stdout)
    assert full["dims"] == tagged["dims"]


@pytest.mark.parametrize(
    ("which", "needle"),
    [
        ("nothing", "no record matches 'nothing'; run `arcodex search` to list ids"),
        ("icechunk@v9", "has no tag 'v9'; its tags are v1"),
        ("zarr@v1", "has no tags (only Icechunk products have versions)"),
        ("01", "matches several records"),
    ],
)
def test_open_refusals_name_cli_commands(
    products: tuple[Path, dict[str, str]], which: str, needle: str
) -> None:
    root, ids = products
    name, _, tag = which.partition("@")
    target = f"{ids.get(name, name)}@{tag}" if tag else ids.get(name, name)
    line = one_line(cli("open", target, catalog=root), 1)
    assert needle in line and "Client." not in line


def test_open_warns_of_an_empty_subset_in_one_line(products: tuple[Path, dict[str, str]]) -> None:
    import json

    root, ids = products
    result = cli("open", ids["zarr"], "--time", "2010/..", "--json", catalog=root)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["dims"]["time"] == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: the subset selects nothing (time 0 of 3): the data covers time 2000-01-01 "
        "to 2000-01-03; widen the time range"
    ]
    result = cli("open", ids["zarr"], "--bbox", "0,89,1,90", catalog=root)
    assert result.exit_code == 0
    assert "warning: the subset selects nothing (lat 0 of 12, lon 0 of 16)" in result.stderr
    quiet = cli("open", ids["zarr"], "--time", "2000-01-02/..", catalog=root)
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_open_time_reads_as_search_does(products: tuple[Path, dict[str, str]]) -> None:
    import json

    root, ids = products
    for window, steps in (("2000-01-02/..", 2), ("../2000-01-01", 1), ("2000-01", 3)):
        out = json.loads(ok("open", ids["zarr"], "--time", window, "--json", catalog=root).stdout)
        assert out["dims"]["time"] == steps, window
    assert "bad time range" in one_line(cli("open", ids["zarr"], "--time", "x", catalog=root), 1)


def test_python_open_dataset_warns_of_an_empty_subset(
    products: tuple[Path, dict[str, str]],
) -> None:
    from arcodex.client import Client

    root, ids = products
    client = Client(str(root))
    with pytest.warns(EmptySubsetWarning, match="time 0 of 3") as caught:
        client.open_dataset(ids["zarr"], time=("2010-01-01", None)).close()
    assert caught[0].filename == __file__  # the warning points at the caller's line
    with pytest.warns(ArcodexWarning, match="keeps no variables; name some of tas"):
        client.open_dataset(ids["zarr"], variables=[]).close()
    assert issubclass(EmptySubsetWarning, UserWarning)
    ds = client.open_dataset(ids["icechunk"][:14] + "@v1", time="2000-01-02")
    with ds:  # no warning: warnings are errors here
        assert ds.sizes["time"] == 1


# -- find --time ---------------------------------------------------------------------------


def test_find_takes_time_with_overlap(products: tuple[Path, dict[str, str]]) -> None:
    import json

    root, ids = products

    def found(*args: str) -> set[str]:
        out = ok("find", *args, "--json", catalog=root).stdout
        return {f["id"] for f in json.loads(out)["features"]}

    everything = set(ids.values())
    assert found() == everything
    assert found("--time", "2000-01-06/..") == {ids["icechunk"]}  # its last step only
    assert found("--time", "2000-01-04") == {ids["icechunk"], ids["netcdf"]}
    assert found("--time", "2000") == everything
    assert found("--time", "../1999") == set()
    assert found("--time", "2000-01-04") == found("--datetime", "2000-01-04")
    search = ok("search", "--time", "2000-01-06/..", "--ids", catalog=root).stdout.split()
    assert set(search) == {ids["icechunk"]}
    line = one_line(cli("find", "--time", "2021/2020", catalog=root), 1)
    assert line == one_line(cli("search", "--time", "2021/2020", catalog=root), 1)
    assert "give one" in one_line(cli("find", "--time", "2000", "--datetime", "2000"), 1)


# -- malformed query terms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "needle"),
    [
        ("site==MHD", "'==' is not an operator (did you mean '='?)"),
        ("year=>2020", "did you mean '>='?"),
        ("=MHD", "no field before '='"),
        ("site=", "the value is empty"),
        ("site~", "the pattern is empty"),
    ],
)
def test_malformed_terms_are_one_line(
    products: tuple[Path, dict[str, str]], term: str, needle: str
) -> None:
    root, _ = products
    line = one_line(cli("search", term, catalog=root), 1)
    assert needle in line and f"'{term}'" in line
    if "operator" in needle:
        assert "the operators are = != > >= < <= ~ :exists :missing" in line


def test_a_quoted_value_may_start_with_an_operator(products: tuple[Path, dict[str, str]]) -> None:
    root, ids = products
    assert ok("search", "site = MHD", "--ids", catalog=root).stdout.split() == [ids["netcdf"]]
    assert ok("search", 'site="=MHD"', "--ids", catalog=root).stdout.split() == []


# -- a bad catalog setting names itself -------------------------------------------------------


def test_a_bad_env_catalog_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    line = one_line(cli("search", ARCODEX_CATALOG=str(missing)), 1)
    assert line == (
        f"error: $ARCODEX_CATALOG={missing} is not an arcodex catalog (no such directory); "
        f"unset it, point it at a catalog, or run `arcodex init {missing}` to make one there"
    )
    line = one_line(cli("info", ARCODEX_CATALOG=str(tmp_path)), 1)
    assert f"$ARCODEX_CATALOG={tmp_path} is not an arcodex catalog (no arcodex.yaml in it)" in line
    # Commands that can run without a catalog do not silently ignore a bad one.
    line = one_line(cli("stac", "schemas", "list", ARCODEX_CATALOG=str(missing)), 1)
    assert "$ARCODEX_CATALOG" in line
    assert not missing.exists()


def test_a_bad_catalog_option_is_named(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    for target, why in (
        (tmp_path / "missing", "no such directory"),
        (tmp_path / "file.txt", "a file, not a directory"),
        (tmp_path, "no arcodex.yaml in it"),
    ):
        line = one_line(cli("search", catalog=target), 1)
        assert line.startswith(f"error: --catalog {target} is not an arcodex catalog ({why})")
        assert f"arcodex init {target}" in line
    line = one_line(cli("convert", "x.nc", catalog=tmp_path / "missing"), 1)
    assert "--catalog" in line  # not "say where the product goes"


def test_a_bad_setting_variable_is_named_without_its_value(tmp_path: Path) -> None:
    Catalog.create(tmp_path / "cat").close()
    line = one_line(cli("search", catalog=tmp_path / "cat", ARCODEX_SCHEMA_POLICY="s3cret"), 1)
    assert "$ARCODEX_SCHEMA_POLICY (schema_policy)" in line and "unset" in line
    assert "s3cret" not in line


# -- serve on a busy port ---------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_serve_on_a_busy_port_says_so_before_its_banner(tmp_path: Path, busy_port: int) -> None:
    Catalog.create(tmp_path / "cat").close()
    line = one_line(cli("serve", "--port", str(busy_port), catalog=tmp_path / "cat"), 1)
    assert line == (
        f"error: port {busy_port} on 127.0.0.1 is already in use (another server?); "
        f"stop it or pick another port with --port {busy_port + 1}"
    )
    line = one_line(cli("serve", "--host", "no-such-host.invalid", catalog=tmp_path / "cat"), 1)
    assert "--host no-such-host.invalid" in line


# -- tables at 80 columns ---------------------------------------------------------------------


TABLES = [
    ["search"],
    ["search", "site=MHD"],
    ["search", "kind=dataset", "--sort", "-surveyed"],
    ["find"],
    ["fields"],
    ["info"],
    ["logs"],
    ["doctor"],
    ["schemas"],
    ["stac", "schemas", "list"],
]


@pytest.mark.parametrize("args", TABLES, ids=[" ".join(a) for a in TABLES])
def test_tables_fit_80_columns(products: tuple[Path, dict[str, str]], args: list[str]) -> None:
    root, _ = products
    result = cli(*args, catalog=root)
    assert result.exit_code in (0, 1), result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    too_wide = [line for line in lines if len(line.rstrip()) > 80]
    assert not too_wide, "\n".join(too_wide)
    if args[0] in ("search", "find", "fields", "logs"):
        # One line a row: a wrapped cell would leave the first column blank below it.
        body = lines[2:-1] if args[0] == "find" else lines[2:]
        wrapped = [line for line in body if line[:1].isspace()]
        assert not wrapped, "\n".join(lines)


def test_record_tables_put_the_title_first_and_cut_it(
    products: tuple[Path, dict[str, str]],
) -> None:
    root, ids = products
    out = ok("search", "site=MHD", catalog=root).stdout
    header, _, row = out.splitlines()[:3]
    assert re.split(r"\s*[┃│]\s*", header.strip())[:4] == ["title", "id", "kind", "status"]
    assert row.startswith(LONG_TITLE[:30]) and "…" in row
    assert ids["netcdf"][:12] in row  # ids are never cut
    assert len(out.splitlines()) == 3  # one line per record, no wrapping


def test_dates_at_midnight_show_as_dates(products: tuple[Path, dict[str, str]]) -> None:
    root, _ = products
    for args in (["search", "surveyed:exists"], ["find"], ["fields", "surveyed"]):
        out = ok(*args, catalog=root).stdout
        assert "T00:00:00" not in out, args
    assert "2019-06-01" in ok("search", "surveyed:exists", catalog=root).stdout
    assert "2000-01-01/2000-01-06" in ok("find", catalog=root).stdout
    logs = ok("logs", catalog=root).stdout
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", logs)  # real times are kept


def test_find_lists_title_first_with_short_ids(products: tuple[Path, dict[str, str]]) -> None:
    root, ids = products
    lines = ok("find", catalog=root).stdout.splitlines()
    assert re.split(r"\s*[┃│]\s*", lines[0].strip()) == ["title", "id", "time", "format"]
    body = "\n".join(lines[2:])
    for record_id in ids.values():
        assert record_id[:12] in body
    assert {"icechunk", "zarr", "netcdf"} <= set(re.findall(r"\b(icechunk|zarr|netcdf)\s*$",
                                                          body, re.M))  # fmt: skip
    assert lines[-1] == "3 found"


def test_fit_widths_cut_flexible_columns_and_drop_optional_ones() -> None:
    from arcodex.cli._render import Column, fit_widths

    columns = [
        Column("title", ["t" * 60], min_width=20, weight=3),
        Column("id", ["i" * 12], fixed=True),
        Column("extra", ["e" * 30], optional=True),
    ]
    fitted = {c.header: w for c, w in fit_widths(columns, 80)}
    assert fitted["id"] == 12
    assert sum(fitted.values()) + 3 * (len(fitted) - 1) <= 80
    narrow = {c.header: w for c, w in fit_widths(columns, 40)}
    assert set(narrow) == {"title", "id"} and narrow["title"] == 40 - 12 - 3
    wide = {c.header: w for c, w in fit_widths(columns, 200)}
    assert wide == {"title": 60, "id": 12, "extra": 30}


# -- every option is described ----------------------------------------------------------------


def _commands() -> list[tuple[list[str], Any]]:
    out: list[tuple[list[str], Any]] = []

    def walk(command: Any, path: list[str]) -> None:
        out.append((path, command))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["arcodex"])
    return out


def _choices(param: Any) -> list[str] | None:
    """The values a Literal or Enum option takes (None for a free one)."""
    descriptor = getattr(param, "type_descriptor", None)
    todo = [getattr(descriptor, "annotation", None)]
    while todo:
        annotation = todo.pop()
        if typing.get_origin(annotation) is typing.Literal:
            return [str(v) for v in typing.get_args(annotation)]
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return [str(m.value) for m in annotation]
        todo.extend(typing.get_args(annotation))
    return None


def _options() -> list[tuple[str, Any]]:
    found = []
    for path, command in _commands():
        for param in command.params:
            opts = getattr(param, "opts", [])
            if type(param).__name__.endswith("Option") and "--help" not in opts:
                found.append((f"{' '.join(path)} {opts[0]}", param))
    return found


def test_every_option_has_help_listing_its_choices() -> None:
    options = _options()
    assert len(options) > 100  # the walk reached every command, sub-apps included
    missing = [name for name, p in options if not (p.help or "").strip()]
    assert not missing, missing
    unlisted = [
        (name, choices)
        for name, p in options
        if (choices := _choices(p)) and not all(c in p.help for c in choices)
    ]
    assert not unlisted, unlisted
    assert _choices(dict(options)["arcodex convert --codec"]) is not None


def test_option_defaults_are_the_real_ones() -> None:
    import inspect

    from arcodex.convert import CODECS, convert

    options = dict(_options())
    engine = inspect.signature(convert).parameters
    for name in ("to", "format", "chunking", "chunk_mb", "zarr_format", "codec", "branch"):
        option = options[f"arcodex convert --{name.replace('_', '-')}"]
        assert option.default == engine[name].default, name
    assert tuple(_choices(options["arcodex convert --codec"]) or ()) == CODECS
    help_text = ok("convert", "--help").stdout
    assert "[default: blosc-zstd]" in help_text
