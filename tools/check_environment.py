"""Refuse a stale or broken environment: ``pip check`` and every installed extra importable.

``./dev`` runs this after set-up, and again each time the set-up stamp says
nothing changed, because a stamp cannot see a package someone upgraded,
removed or broke by hand. It reads ``pyproject.toml``: the project's
dependencies and the named extras (``arcodex[a,b]`` inside an extra expanded),
and ``[tool.arcodex.imports]``, the module each distribution provides. It
prints one line per problem and exits 1 if there is any.

    python tools/check_environment.py --extras all,test,docs [--pyproject pyproject.toml]

It must not import arcodex: a broken environment is what it looks for.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["distributions", "main", "normalize", "problems"]


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> tuple[str, list[str]]:
    """The distribution and the extras a requirement names (`arcodex[a,b]>=1` → arcodex, a, b)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", requirement)
    if match is None:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    extras = [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]
    return normalize(match.group(1)), extras


def distributions(project: dict[str, Any], extras: list[str]) -> list[str]:
    """The dependencies and the distributions of `extras`, self-references expanded, in order."""
    own = normalize(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = []
    seen_extras: set[str] = set()

    def add(requirements: list[str]) -> None:
        for requirement in requirements:
            name, sub = _name(requirement)
            if name == own:
                for extra in sub:
                    visit(extra)
            elif name not in out:
                out.append(name)

    def visit(extra: str) -> None:
        if extra in seen_extras:
            return
        if extra not in optional:
            raise ValueError(f"pyproject.toml has no extra {extra!r}")
        seen_extras.add(extra)
        add(optional[extra])

    add(project.get("dependencies", []))
    for extra in extras:
        visit(extra)
    return out


def _pip_check() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return []
    lines = (done.stdout + done.stderr).strip().splitlines()
    return [f"pip check: {line}" for line in lines] or ["pip check failed"]


def problems(pyproject: Path, extras: list[str], pip_check: bool = True) -> list[str]:
    """Every reason the environment does not match `pyproject` with `extras`, one line each."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    imports: dict[str, str] = data.get("tool", {}).get("arcodex", {}).get("imports", {})
    found = _pip_check() if pip_check else []
    for dist in distributions(data["project"], extras):
        if dist not in imports:
            found.append(f"{dist}: no module listed for it in [tool.arcodex.imports]")
            continue
        module = imports[dist]
        if not module:
            continue  # stubs only
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure to import is a broken environment
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            found.append(f"{dist}: import {module} failed: {message}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="", help="comma-separated extras that must import")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--no-pip-check", action="store_true", help="only the imports")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    found = problems(args.pyproject, extras, pip_check=not args.no_pip_check)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
