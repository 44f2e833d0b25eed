"""In CI, a skip that nobody expected fails the run.

A skipped test is not a passed test: a dependency missing from the CI
environment turns a module-level ``pytest.importorskip`` into a whole test
file that silently never runs, and the run stays green. With the ini option
``arcodex_expected_skips`` naming an allow-list file and ``CI`` set in the
environment (as every CI service sets it), any skip not matched by the
allow-list makes pytest exit non-zero, naming each skipped test and its reason.

The allow-list has one entry a line: a node id pattern (``fnmatch``, no
spaces), whitespace, then the reason the skip is expected (required). Blank
lines and lines starting with ``#`` are ignored::

    tests/test_catalog.py::test_unreadable_file  root reads any file

Reports are collected on the process that prints the summary: with
pytest-xdist the controller receives every worker's reports through the same
hooks, and the workers themselves do nothing.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["INI_OPTION", "ExpectedSkip", "SkipPolicy", "ci_enabled", "read_allow_list"]

INI_OPTION = "arcodex_expected_skips"
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class ExpectedSkip:
    """One allow-list entry: a node id pattern and why skipping it is expected."""

    pattern: str
    reason: str

    def matches(self, nodeid: str) -> bool:
        return fnmatch.fnmatchcase(nodeid, self.pattern)


def ci_enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """True when the ``CI`` environment variable says this is a CI run."""
    return environ.get("CI", "").strip().lower() not in _FALSE


def read_allow_list(path: Path) -> list[ExpectedSkip]:
    """The entries of an allow-list file; a missing file or reason is a usage error."""
    if not path.is_file():
        raise pytest.UsageError(
            f"{INI_OPTION}: no allow-list at {path}; create it (one `PATTERN  reason` a line)"
        )
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition(" ")
        if not reason.strip():
            raise pytest.UsageError(
                f"{path}:{number}: {pattern!r} has no reason; write why this skip is expected after it"
            )
        entries.append(ExpectedSkip(pattern, reason.strip()))
    return entries


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    """The plugin object: records skips, fails the session on unexpected ones."""

    def __init__(self, allowed: list[ExpectedSkip], source: Path) -> None:
        self.allowed = allowed
        self.source = source
        self.unexpected: dict[str, str] = {}

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return  # an xfail is reported as skipped; it is not a skip
        if any(entry.matches(report.nodeid) for entry in self.allowed):
            return
        self.unexpected.setdefault(report.nodeid, _reason(report))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.unexpected and exitstatus in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.unexpected:
            return
        terminalreporter.section("unexpected skips (CI)", sep="=", red=True, bold=True)
        for nodeid, reason in sorted(self.unexpected.items()):
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")
        terminalreporter.line(
            f"{len(self.unexpected)} unexpected skip(s) fail this CI run: install what they "
            f"need, fix their cause, or add them with a reason to {self.source}",
            red=True,
        )


def configure(config: pytest.Config) -> None:
    """Register the policy when the project names an allow-list and this is a CI run."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller sees every report
        return
    name = config.getini(INI_OPTION)
    if not name or not ci_enabled():
        return
    path = Path(str(name))
    if not path.is_absolute():
        path = config.rootpath / path
    config.pluginmanager.register(SkipPolicy(read_allow_list(path), path), "arcodex-skip-policy")
