"""In CI an unexpected skip fails the run; outside CI nothing changes (arcodex.testing._skips)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import arcodex

pytest_plugins = ["pytester"]

SKIPPING_TESTS = {
    "test_gpu": """
        import pytest

        def test_runs():
            pass

        def test_needs_gpu():
            pytest.skip("no gpu here")

        @pytest.mark.xfail(reason="known bug")
        def test_known_bug():
            assert False
    """,
    "test_missing_dep": """
        import pytest

        pytest.importorskip("arcodex_no_such_module")

        def test_never_runs():
            pass
    """,
}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with a skipping test, a module skipped at import, and an empty allow-list."""
    pytester.makeini("[pytest]\narcodex_expected_skips = expected_skips.txt\n")
    pytester.makepyfile(**SKIPPING_TESTS)
    pytester.makefile(".txt", expected_skips="# pattern  reason\n")
    return pytester


def allow(pytester: pytest.Pytester, *lines: str) -> None:
    pytester.makefile(".txt", expected_skips="\n".join(lines) + "\n")


def test_unexpected_skips_fail_in_ci(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = project.runpytest()
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*unexpected skips (CI)*",
            "SKIPPED test_gpu.py::test_needs_gpu: no gpu here",
            "SKIPPED test_missing_dep.py: could not import 'arcodex_no_such_module'*",
            "2 unexpected skip(s) fail this CI run*expected_skips.txt",
        ]
    )
    assert "test_known_bug" not in result.stdout.str().split("unexpected skips")[1]


def test_allow_listed_skips_pass_in_ci(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    allow(project, "test_gpu.py::test_needs_*  needs a GPU", "test_missing_dep.py  optional dep")
    result = project.runpytest()
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "unexpected skips" not in result.stdout.str()


def test_one_unlisted_skip_is_enough(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "1")
    allow(project, "test_gpu.py::test_needs_gpu  needs a GPU")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["SKIPPED test_missing_dep.py: could not import*"])
    assert "SKIPPED test_gpu.py::test_needs_gpu:" not in result.stdout.str()


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_skips_are_unchanged(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = project.runpytest()
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "unexpected skips" not in result.stdout.str()


def test_projects_without_an_allow_list_are_left_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plugin loads in every pytest run; it acts only where a project opts in."""
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(**SKIPPING_TESTS)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.OK


def test_an_entry_without_reason_is_refused(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    allow(project, "test_gpu.py::test_needs_gpu")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*expected_skips.txt:1: 'test_gpu.py::test_needs_gpu' has no reason*"]
    )


def test_a_missing_allow_list_is_refused(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    (project.path / "expected_skips.txt").unlink()
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no allow-list at*expected_skips.txt*"])


def test_unexpected_skips_fail_under_xdist(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With -n 2 the workers run the tests and the controller sees every skip."""
    monkeypatch.setenv("CI", "true")
    # the subprocess runs in another directory: load the plugin of the arcodex under test
    here = str(Path(arcodex.__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    result = project.runpytest_subprocess("-n", "2", "-p", "xdist")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*unexpected skips (CI)*",
            "SKIPPED test_gpu.py::test_needs_gpu: no gpu here",
            "SKIPPED test_missing_dep.py: could not import 'arcodex_no_such_module'*",
        ]
    )
