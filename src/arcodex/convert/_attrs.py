"""Attribute corrections: set, delete and rename, globally or per variable.

On the command line: ``--set-attr title="Sea temperature"`` (global),
``--set-attr tos:units=K`` (variable ``tos``), ``--del-attr history``,
``--rename-attr tos:long_name=description``. In a YAML file::

    global: {set: {title: Sea temperature}, delete: [history], rename: {}}
    variables:
      tos: {set: {units: K}, rename: {long_name: description}}

Values given on the command line are read as JSON when they parse (numbers,
lists, booleans), otherwise kept as text. Corrections are applied to the
product's metadata and verified by the product check.

A correction that would do nothing or destroy something is refused: deleting
or renaming an attribute no source has, or renaming onto an attribute that is
already there, unless forced (``--force-attrs``, or ``force: true`` in a YAML
block). ``units`` and ``calendar`` of the time axis re-encode its values (see
:mod:`arcodex.convert._plan`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arcodex.errors import ValidationError

__all__ = ["GLOBAL", "AttrFix", "AttrFixes"]

#: The target name of a global attribute correction.
GLOBAL = ""


@dataclass
class AttrFix:
    """The corrections of one target (a variable, or the dataset when the name is empty)."""

    set: dict[str, Any] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    rename: dict[str, str] = field(default_factory=dict)
    #: Delete or rename attributes that are not there, rename onto ones that are.
    force: bool = False

    def apply(
        self, attrs: Mapping[str, Any], *, where: str = "global", known: Iterable[str] = ()
    ) -> dict[str, Any]:
        """``attrs`` corrected; ``known`` are attributes other sources have (they count as there).

        Raises:
            ValidationError: a correction would do nothing or overwrite, and is not forced.
        """
        out = dict(attrs)
        there = set(out) | set(known)
        for old, new in self.rename.items():
            if old not in there and not self.force:
                raise ValidationError(
                    f"cannot rename {_name(where, old)}: no source has it; "
                    "check the name, or pass --force-attrs"
                )
            if new in there and not self.force:
                raise ValidationError(
                    f"cannot rename {_name(where, old)} to {new}: {_name(where, new)} is already "
                    "there; delete it first, or pass --force-attrs to overwrite it"
                )
            if old in out:
                out[new] = out.pop(old)
        for key in self.delete:
            if key not in there and not self.force:
                raise ValidationError(
                    f"cannot delete {_name(where, key)}: no source has it; "
                    "check the name, or pass --force-attrs"
                )
            out.pop(key, None)
        out.update(self.set)
        return out

    def __bool__(self) -> bool:
        return bool(self.set or self.delete or self.rename)


@dataclass
class AttrFixes:
    """Every correction of a conversion, by target (``GLOBAL`` or a variable name)."""

    targets: dict[str, AttrFix] = field(default_factory=dict)

    def for_target(self, name: str) -> AttrFix:
        return self.targets.setdefault(name, AttrFix())

    def apply(
        self, name: str, attrs: Mapping[str, Any], *, known: Iterable[str] = ()
    ) -> dict[str, Any]:
        fix = self.targets.get(name)
        return fix.apply(attrs, where=name or "global", known=known) if fix else dict(attrs)

    def variables(self) -> set[str]:
        return {name for name, fix in self.targets.items() if name != GLOBAL and fix}

    def __bool__(self) -> bool:
        return any(self.targets.values())

    @classmethod
    def parse(
        cls,
        set_attrs: Iterable[str] = (),
        del_attrs: Iterable[str] = (),
        rename_attrs: Iterable[str] = (),
        file: str | Path | None = None,
        *,
        force: bool = False,
    ) -> AttrFixes:
        """Corrections from command-line terms and an optional YAML file (terms win);
        ``force`` forces every one of them."""
        fixes = cls.from_file(file) if file else cls()
        for term in set_attrs:
            target, key, value = _split(term, "--set-attr", needs_value=True)
            fixes.for_target(target).set[key] = _value(value)
        for term in del_attrs:
            target, key, _ = _split(term, "--del-attr", needs_value=False)
            fixes.for_target(target).delete.append(key)
        for term in rename_attrs:
            target, key, value = _split(term, "--rename-attr", needs_value=True)
            if not value:
                raise ValidationError(f"--rename-attr {term!r} needs a new name: OLD=NEW")
            fixes.for_target(target).rename[key] = value
        if force:
            for fix in fixes.targets.values():
                fix.force = True
        return fixes

    @classmethod
    def from_file(cls, file: str | Path) -> AttrFixes:
        import yaml

        path = Path(file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationError(f"cannot read the attribute file {path.name}: {exc}") from None
        return cls.from_dict(data, where=path.name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "attribute fixes") -> AttrFixes:
        if not isinstance(data, Mapping) or set(data) - {"global", "variables"}:
            raise ValidationError(f"{where}: expected the keys 'global' and 'variables' only")
        fixes = cls()
        blocks: dict[str, Any] = {GLOBAL: data.get("global") or {}}
        blocks.update(data.get("variables") or {})
        for target, block in blocks.items():
            if not isinstance(block, Mapping) or set(block) - {"set", "delete", "rename", "force"}:
                raise ValidationError(
                    f"{where}: {target or 'global'} takes 'set', 'delete', 'rename' and 'force' only"
                )
            fix = fixes.for_target(str(target))
            fix.set.update(dict(block.get("set") or {}))
            fix.delete.extend(str(k) for k in block.get("delete") or [])
            fix.rename.update({str(k): str(v) for k, v in dict(block.get("rename") or {}).items()})
            fix.force = fix.force or bool(block.get("force"))
        return fixes

    def to_dict(self) -> dict[str, Any]:
        variables = {
            name: _fix_dict(fix) for name, fix in self.targets.items() if name != GLOBAL and fix
        }
        out: dict[str, Any] = {}
        if self.targets.get(GLOBAL):
            out["global"] = _fix_dict(self.targets[GLOBAL])
        if variables:
            out["variables"] = variables
        return out


def _fix_dict(fix: AttrFix) -> dict[str, Any]:
    return {
        k: v
        for k, v in (
            ("set", fix.set),
            ("delete", fix.delete),
            ("rename", fix.rename),
            ("force", fix.force),
        )
        if v
    }


def _name(where: str, key: str) -> str:
    return key if where == "global" else f"{where}:{key}"


def _split(term: str, option: str, *, needs_value: bool) -> tuple[str, str, str]:
    head, eq, value = term.partition("=")
    if needs_value and not eq:
        raise ValidationError(f"{option} {term!r} needs a value: [VARIABLE:]NAME=VALUE")
    target, colon, key = head.partition(":")
    if not colon:
        target, key = GLOBAL, head
    if not key.strip():
        raise ValidationError(f"{option} {term!r} names no attribute: [VARIABLE:]NAME")
    return target.strip(), key.strip(), value


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
