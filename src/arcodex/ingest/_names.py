"""Period names: how a period appears in a file name, an object key or a URL.

A pattern is either a template, ``tas_{period}.nc`` (the period's id) or
``tas_{period:%Y%m%d}.nc`` (its start written with a strftime format), or a
regular expression with a named group ``period`` (``tas_(?P<period>\\d{8})\\.nc``).
Other ``{name}`` fields of a template match any text and cannot be rendered.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from arcodex.errors import ValidationError
from arcodex.ingest._periods import FREQUENCIES, PeriodType, parse_period, period_id

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

__all__ = ["PeriodNames", "period_type_of", "public_url"]

_FIELD = re.compile(r"\{(\w+)(?::([^{}]*))?\}")


def period_type_of(params: dict[str, Any], provider: str) -> PeriodType:
    """The period type the engine passes in ``params["period"]`` (the template's period)."""
    value = params.get("period")
    if value not in FREQUENCIES:
        raise ValidationError(
            f"the {provider} provider needs params.period, one of {', '.join(FREQUENCIES)} "
            f"(the engine sets it from the template's period), not {value!r}"
        )
    return value  # type: ignore[no-any-return]


def public_url(url: str) -> str:
    """``url`` without user, password, query string or fragment: safe in a message."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class PeriodNames:
    """Reads periods from names, and writes names of periods (templates only)."""

    def __init__(self, pattern: str, period_type: PeriodType) -> None:
        self.pattern = pattern
        self.period_type = period_type
        self.is_regex = "(?P<period>" in pattern
        self._spec: str | None = None
        if self.is_regex:
            try:
                self._regex = re.compile(pattern)
            except re.error as exc:
                raise ValidationError(f"bad pattern {pattern!r}: {exc}; fix the regex") from exc
            return
        fields = [m for m in _FIELD.finditer(pattern) if m.group(1) == "period"]
        if not fields:
            raise ValidationError(
                f"pattern {pattern!r} names no period; write {{period}} (or a regex with "
                "a group (?P<period>...)) where the period goes"
            )
        self._spec = fields[0].group(2) or None
        self._regex = re.compile(self._template_regex(pattern))

    @staticmethod
    def _template_regex(pattern: str) -> str:
        out, seen, last = [], False, 0
        for match in _FIELD.finditer(pattern):
            out.append(re.escape(pattern[last : match.start()]))
            if match.group(1) == "period" and not seen:
                out.append("(?P<period>.+?)")
                seen = True
            else:
                out.append(".+?")
            last = match.end()
        out.append(re.escape(pattern[last:]))
        return "".join(out)

    def period_of(self, name: str) -> pd.Period | None:
        """The period ``name`` is of, or None when it does not match or holds no period."""
        match = self._regex.fullmatch(name) if not self.is_regex else self._regex.search(name)
        if match is None:
            return None
        text = match.group("period")
        if self._spec:
            import pandas as pd  # type: ignore[import-untyped, unused-ignore]

            try:
                stamp = datetime.strptime(text, self._spec)
            except ValueError:
                return None
            return pd.Period(pd.Timestamp(stamp), freq=FREQUENCIES[self.period_type])
        try:
            return parse_period(text, self.period_type)
        except ValidationError:
            return None

    def render(self, period: pd.Period) -> str:
        """The name of ``period`` (a template holding only ``{period}`` fields)."""
        if self.is_regex:
            raise ValidationError(
                f"cannot write a name from the regex {self.pattern!r}; give a template with {{period}}"
            )

        def field(match: re.Match[str]) -> str:
            if match.group(1) != "period":
                raise ValidationError(
                    f"the template {self.pattern!r} has a field {{{match.group(1)}}} that "
                    "cannot be filled; use only {period}"
                )
            spec = match.group(2)
            if spec:
                return str(period.start_time.strftime(spec))
            return period_id(period, self.period_type)

        return _FIELD.sub(field, self.pattern)
