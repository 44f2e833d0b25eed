"""`./dev` refuses a stale or broken environment (tools/check_environment.py)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "check_environment.py"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
IMPORTS: dict[str, str] = PYPROJECT["tool"]["arcodex"]["imports"]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_environment", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load()
EXTRAS = sorted(PYPROJECT["project"]["optional-dependencies"])


def test_every_distribution_of_every_extra_has_its_module_listed() -> None:
    wanted = set(check.distributions(PYPROJECT["project"], EXTRAS))
    missing = sorted(wanted - set(IMPORTS))
    assert not missing, f"add these to [tool.arcodex.imports] in pyproject.toml: {missing}"
    stale = sorted(set(IMPORTS) - wanted)
    assert not stale, f"no dependency or extra names these any more: {stale}"


def test_listed_modules_belong_to_their_distributions() -> None:
    """Where a distribution is installed, the module listed for it is one it provides."""
    owners = importlib.metadata.packages_distributions()
    checked = 0
    for dist, module in IMPORTS.items():
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra this environment was not installed with
        if not module:
            assert dist.startswith("types-"), f"{dist}: only stub distributions import nothing"
            continue
        top = module.split(".")[0]
        assert dist in {check.normalize(d) for d in owners.get(top, [])}, (dist, module)
        checked += 1
    assert checked >= 40


def test_extras_expand_self_references() -> None:
    project = {
        "name": "Demo_Pkg",
        "dependencies": ["a>=1"],
        "optional-dependencies": {
            "x": ["B[extra]>=2; python_version>'3'", "c"],
            "y": ["demo-pkg[x]", "d.e"],
            "all": ["demo_pkg[y,x]"],
        },
    }
    assert check.distributions(project, ["all"]) == ["a", "b", "c", "d-e"]
    with pytest.raises(ValueError, match="no extra 'z'"):
        check.distributions(project, ["z"])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_a_module_that_does_not_import_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\ndependencies = ["pyyaml"]\n'
        '[project.optional-dependencies]\nbroken = ["gone-pkg", "unlisted"]\n'
        '[tool.arcodex.imports]\npyyaml = "yaml"\ngone-pkg = "arcodex_no_such_module"\n'
    )
    done = _run("--extras", "broken", "--pyproject", str(tmp_path / "pyproject.toml"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "gone-pkg: import arcodex_no_such_module failed: "
        "ModuleNotFoundError: No module named 'arcodex_no_such_module'",
        "unlisted: no module listed for it in [tool.arcodex.imports]",
    ]


@pytest.mark.slow
def test_this_environment_passes() -> None:
    """The environment the tests run in is the one ./dev makes: pip check and all imports pass."""
    done = _run("--extras", "all,test,docs", "--pyproject", str(ROOT / "pyproject.toml"))
    assert (done.returncode, done.stderr) == (0, "")


def _dev_project(root: Path, all_extra: str) -> None:
    """A copy of ./dev whose .venv is this interpreter, set up (its stamp current)."""
    (root / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "dev", root / "dev")
    shutil.copy(SCRIPT, root / "tools" / SCRIPT.name)
    pyproject = (
        f'[project]\nname = "p"\ndependencies = ["pyyaml"]\n'
        f"[project.optional-dependencies]\nall = [{all_extra}]\ntest = []\ndocs = []\n"
        f'[tool.arcodex.imports]\npyyaml = "yaml"\ngone-pkg = "arcodex_no_such_module"\n'
    )
    (root / "pyproject.toml").write_text(pyproject)
    (root / "constraints.txt").write_text("pyyaml\n")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    stamp = hashlib.sha256(
        (root / "pyproject.toml").read_bytes() + (root / "constraints.txt").read_bytes()
    )
    (root / ".venv" / ".arcodex-setup").write_text(stamp.hexdigest() + "\n")


@pytest.mark.parametrize(("all_extra", "ok"), [("", True), ('"gone-pkg"', False)])
def test_dev_refuses_a_broken_environment_even_when_its_stamp_is_current(
    tmp_path: Path, all_extra: str, ok: bool
) -> None:
    _dev_project(tmp_path, all_extra)
    done = subprocess.run(
        [str(tmp_path / "dev"), "shell"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    if ok:
        assert (done.returncode, done.stdout) == (0, "source .venv/bin/activate\n"), done.stderr
        return
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "gone-pkg: import arcodex_no_such_module failed: "
        "ModuleNotFoundError: No module named 'arcodex_no_such_module'",
        "the environment in .venv is stale or broken (above); run `rm -rf .venv && ./dev test`",
    ]
