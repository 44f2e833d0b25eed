"""Hypothesis strategies for arcodex models.

Two families: wide ones (:func:`records`, :func:`queries` …) that explore
what the models accept, for round-trip tests; and narrow ones
(:func:`search_records`, :func:`search_cases`) that draw from small pools
of values so that random queries often match random records, for comparing
a backend with :mod:`arcodex.testing._reference`.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from arcodex.model import (
    ID_PATTERN,
    RECORD_STATUSES,
    Artifact,
    BBox,
    BundleMember,
    Condition,
    ExternalUri,
    FieldSummary,
    FsspecUrl,
    Inline,
    Lineage,
    LocalPath,
    Operation,
    OperationError,
    PlannedPath,
    Query,
    Record,
    SortKey,
    TimeRange,
    parse_iso_period,
)
from arcodex.testing._reference import nodes_at

__all__ = [
    "artifacts",
    "bboxes",
    "conditions",
    "field_summaries",
    "json_scalars",
    "locators",
    "metadata",
    "operations",
    "queries",
    "records",
    "search_cases",
    "search_records",
    "time_ranges",
]

_EXTENT_KEYS = frozenset({"bbox", "datetime", "start_datetime", "end_datetime"})

# -- wide strategies ---------------------------------------------------------------------------

ids = st.from_regex(ID_PATTERN, fullmatch=True)
names = st.from_regex(r"^[a-z][a-z0-9_-]{0,15}$", fullmatch=True)
timezones: st.SearchStrategy[Any] = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8)), None]
)
moments = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31), timezones=timezones
)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
#: Metadata integers are 64-bit (every SQL engine stores them natively).
int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def json_scalars() -> st.SearchStrategy[str | int | float | bool | None]:
    """Any value JSON can carry as a scalar."""
    return st.one_of(st.none(), st.booleans(), int64s, finite_floats, st.text(max_size=20))


_keys = st.text(min_size=1, max_size=10).filter(lambda k: "." not in k)


def metadata(max_leaves: int = 20) -> st.SearchStrategy[dict[str, Any]]:
    """Nested JSON metadata without the extent keys (they have their own rules)."""
    values = st.recursive(
        json_scalars(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )
    return st.dictionaries(_keys.filter(lambda k: k not in _EXTENT_KEYS), values, max_size=6)


def locators() -> st.SearchStrategy[Any]:
    """Every locator variant."""
    text = st.text(min_size=1, max_size=30)
    profiles = st.none() | names
    return st.one_of(
        st.builds(LocalPath, path=text),
        st.builds(FsspecUrl, url=text, profile=profiles),
        st.builds(ExternalUri, uri=text),
        st.builds(PlannedPath, path=text, profile=profiles),
        st.builds(Inline, data=st.text(max_size=30), encoding=st.sampled_from(["utf-8", "base64"])),
        st.builds(BundleMember, bundle=text, member=text),
    )


def artifacts() -> st.SearchStrategy[Artifact]:
    """Artifacts with any locator, hashes and metadata."""
    return st.builds(
        Artifact,
        id=ids,
        role=names,
        locator=locators(),
        media_type=st.none() | st.text(max_size=20),
        format=st.none() | names,
        size_bytes=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
        hashes=st.dictionaries(names, st.text(max_size=20), max_size=2),
        status=st.sampled_from(["planned", "available", "missing", "failed", "external"]),
        managed=st.booleans(),
        metadata=metadata(max_leaves=5),
        created_at=moments,
    )


@st.composite
def _extent(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["bbox"] = draw(_bbox_lists)
    kind = draw(st.sampled_from(["none", "datetime", "range"]))
    if kind == "datetime":
        out["datetime"] = draw(st.sampled_from(_DATES))
    elif kind == "range":
        a, b = sorted(draw(st.lists(st.sampled_from(_DATES), min_size=2, max_size=2)), key=_start)
        out["start_datetime"], out["end_datetime"] = a, b
    return out


def records() -> st.SearchStrategy[Record]:
    """Records with nested metadata, extents, artifacts of every locator kind and lineage."""

    @st.composite
    def build(draw: st.DrawFn) -> Record:
        meta = draw(metadata())
        meta.update(draw(_extent()))
        return Record(
            id=draw(ids),
            kind=draw(names),
            title=draw(st.none() | st.text(max_size=30)),
            description=draw(st.none() | st.text(max_size=60)),
            metadata=meta,
            tags=draw(
                st.lists(st.from_regex(r"^[A-Za-z0-9_:.-]{1,10}$", fullmatch=True), max_size=4)
            ),
            artifacts=draw(st.lists(artifacts(), max_size=3, unique_by=lambda a: a.id)),
            status=draw(st.sampled_from(RECORD_STATUSES)),
            version=draw(st.integers(min_value=1, max_value=2**63 - 1)),
            lineage=draw(
                st.lists(
                    st.builds(
                        Lineage,
                        operation_id=st.none() | ids,
                        sources=st.lists(ids, max_size=3),
                        relation=names,
                    ),
                    max_size=2,
                )
            ),
            created_at=draw(moments),
            updated_at=draw(moments),
            created_by=draw(st.none() | st.text(max_size=10)),
            updated_by=draw(st.none() | st.text(max_size=10)),
            schema_name=draw(st.none() | names),
            schema_version=draw(st.none() | st.from_regex(r"^\d\.\d$", fullmatch=True)),
        )

    return build()


def operations() -> st.SearchStrategy[Operation]:
    """Operations in any state."""
    return st.builds(
        Operation,
        id=ids,
        action=names,
        status=st.sampled_from(["running", "succeeded", "failed", "rolled_back"]),
        inputs=st.lists(ids, max_size=3),
        outputs=st.lists(ids, max_size=3),
        parameters=metadata(max_leaves=5),
        user=st.none() | st.text(max_size=10),
        started_at=moments,
        finished_at=st.none() | moments,
        error=st.none() | st.builds(OperationError, type=names, message=st.text(max_size=40)),
    )


_field_names = st.from_regex(
    r"^[A-Za-z_][A-Za-z0-9_\-]{0,8}(\.[A-Za-z0-9_\-]{1,8}){0,2}$", fullmatch=True
)
_orderable = st.one_of(
    int64s,
    finite_floats,
    st.sampled_from(["2020", "2020-06", "2020-06-15", "2020-06-15T12:00:00Z"]).filter(
        lambda s: len(s) >= 7
    ),
)


def conditions() -> st.SearchStrategy[Condition]:
    """Valid conditions of every operator."""
    return st.one_of(
        st.builds(
            Condition, field=_field_names, op=st.sampled_from(["eq", "ne"]), value=json_scalars()
        ),
        st.builds(
            Condition,
            field=_field_names,
            op=st.just("in"),
            value=st.lists(json_scalars(), min_size=1, max_size=4),
        ),
        st.builds(
            Condition,
            field=_field_names,
            op=st.sampled_from(["lt", "le", "gt", "ge"]),
            value=_orderable,
        ),
        st.builds(
            Condition,
            field=_field_names,
            op=st.just("glob"),
            value=st.text(min_size=1, max_size=10),
        ),
        st.builds(
            Condition,
            field=_field_names,
            op=st.just("regex"),
            value=st.sampled_from(["^a", "b$", "x|y", "[0-9]+"]),
        ),
        st.builds(Condition, field=_field_names, op=st.sampled_from(["exists", "missing"])),
    )


def bboxes() -> st.SearchStrategy[BBox]:
    """Valid boxes, including 0–360 longitudes and antimeridian crossings."""
    lon = st.floats(min_value=-360, max_value=360)
    lat = st.floats(min_value=-90, max_value=90)
    return st.builds(
        lambda w, e, a, b: BBox(west=w, south=min(a, b), east=e, north=max(a, b)),
        lon,
        lon,
        lat,
        lat,
    )


def time_ranges() -> st.SearchStrategy[TimeRange]:
    """Closed, half-open and open time ranges."""
    aware = st.datetimes(timezones=st.just(UTC))
    return st.one_of(
        st.builds(TimeRange, start=st.none() | aware, end=st.none()),
        st.builds(TimeRange, start=st.none(), end=st.none() | aware),
        st.lists(aware, min_size=2, max_size=2)
        .map(sorted)
        .map(lambda p: TimeRange(start=p[0], end=p[1])),
    )


def queries() -> st.SearchStrategy[Query]:
    """Any valid query."""
    return st.builds(
        Query,
        conditions=st.lists(conditions(), max_size=4),
        text=st.none() | st.text(min_size=1, max_size=20),
        bbox=st.none() | bboxes(),
        time=st.none() | time_ranges(),
        sort=st.lists(st.builds(SortKey, field=_field_names, descending=st.booleans()), max_size=3),
        limit=st.none() | st.integers(min_value=1, max_value=10_000),
        cursor=st.none()
        | st.text(alphabet=string.ascii_letters + string.digits + "-_=", max_size=40),
    )


def field_summaries() -> st.SearchStrategy[FieldSummary]:
    """Summaries as ``fields()`` returns them."""
    return st.builds(
        FieldSummary,
        path=_field_names,
        types=st.lists(
            st.sampled_from(
                ["string", "date", "integer", "number", "boolean", "object", "array", "null"]
            ),
            unique=True,
        ).map(sorted),
        count=st.integers(min_value=0, max_value=2**63 - 1),
        examples=st.lists(json_scalars(), max_size=5),
    )


# -- narrow strategies for search ----------------------------------------------------------------

_DATES = [
    "2019-12-31T23:59:59Z",
    "2020-01",
    "2020-06",
    "2020-06-15",
    "2020-06-15T12:00:00Z",
    "2020-06-15T14:00:00+02:00",
    "2020-12-31T23:59:59Z",
    "2021-01-01",
    "2021-03",
]
_STRINGS = ["x", "y", "MHD", "abc", "Abc", "Mace Head", "ab-c", "", "2020", *_DATES[:5]]
_NUMBERS: list[int | float] = [-1, 0, 1, 2, 2020, 0.5, 1.0, 2.5, -3.25]
_SCALARS: list[Any] = [*_STRINGS, *_NUMBERS, True, False, None]
_LONS = [
    -360,
    -270,
    -200,
    -180,
    -179,
    -90,
    -10,
    0,
    10,
    90,
    170,
    179,
    180,
    181,
    190,
    200,
    270,
    350,
    360,
]
_LATS = [-90, -45, -10, 0, 10, 45, 90]
_TITLES = [None, "Mace Head methane", "mace", "CH4 record", "x", "Abc"]
_DESCRIPTIONS = [None, "methane at MHD", "abc def", "hourly ch4"]
_TAGS = ["ch4", "co2", "a", "b", "MHD"]
_KINDS = ["dataset", "document", "run"]
_USERS = [None, "ana", "bo"]
_CREATED = [
    datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2020, 1, 1, tzinfo=UTC),
    datetime(2020, 6, 15, 12, tzinfo=UTC),
    datetime(2020, 6, 15, 12, 0, 0, 500000, tzinfo=UTC),
    datetime(2021, 1, 1, tzinfo=UTC),
]
_WORDS = ["mace", "head", "ch4", "methane", "abc", "x", "mhd", "ma*", "c*", "2020", "zzz", "hour*"]
_GLOBS = [
    "*",
    "a*",
    "A*",
    "*b*",
    "?",
    "x",
    "M?D",
    "2020-*",
    "[ab]*",
    "[^a]*",
    "*[0-9]",
    "m*",
    "Mace*",
]
_REGEXES = ["^a", "c$", "MHD", "^2020", "x|y", "[0-9]", "(?i)mace", "^$", "^[A-Z]"]
_META_PATHS = ["a", "b", "n", "n.x", "l", "l.x", "d", "flag", "never", "metadata.title"]
_SORTS = [
    "title",
    "version",
    "created_at",
    "updated_at",
    "kind",
    "id",
    "a",
    "b",
    "d",
    "n.x",
    "l",
    "never",
    "metadata.title",
]


def _start(text: str) -> datetime:
    return parse_iso_period(text)[0]


_bbox_lists = st.builds(
    lambda w, e, a, b: [w, min(a, b), e, max(a, b)],
    st.sampled_from(_LONS) | st.integers(-360, 360),
    st.sampled_from(_LONS) | st.integers(-360, 360),
    st.sampled_from(_LATS),
    st.sampled_from(_LATS),
)
_scalar = st.sampled_from(_SCALARS)
_small_values = st.one_of(
    _scalar,
    st.lists(_scalar, max_size=3),
    st.fixed_dictionaries({}, optional={"x": _scalar, "y": _scalar}),
)


@st.composite
def _search_metadata(draw: st.DrawFn) -> dict[str, Any]:
    meta: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "a": _scalar,
                "b": _small_values,
                "n": st.fixed_dictionaries({}, optional={"x": _small_values, "y": _scalar}),
                "l": st.lists(
                    st.one_of(_scalar, st.fixed_dictionaries({"x": _scalar})), max_size=3
                ),
                "d": st.sampled_from(_DATES),
                "flag": st.booleans(),
                "title": _scalar,
            },
        )
    )
    meta.update(draw(_extent()))
    return meta


@st.composite
def search_records(draw: st.DrawFn, max_size: int = 10) -> list[Record]:
    """A small list of records with unique ids, drawn from pools that queries also draw from."""
    count = draw(st.integers(min_value=0, max_value=max_size))
    out = []
    for i in range(count):
        out.append(
            Record(
                id=f"r{i:02d}-{draw(st.sampled_from(['a', 'b', 'x']))}",
                kind=draw(st.sampled_from(_KINDS)),
                title=draw(st.sampled_from(_TITLES)),
                description=draw(st.sampled_from(_DESCRIPTIONS)),
                metadata=draw(_search_metadata()),
                tags=draw(st.lists(st.sampled_from(_TAGS), unique=True, max_size=3)),
                status=draw(st.sampled_from(RECORD_STATUSES)),
                version=draw(st.integers(min_value=1, max_value=3)),
                created_at=draw(st.sampled_from(_CREATED)),
                created_by=draw(st.sampled_from(_USERS)),
                schema_name=draw(st.sampled_from([None, "s1"])),
            )
        )
    return out


def _related(value: Any) -> list[Any]:
    """Query values close to a stored value: itself, its period prefixes, its neighbours."""
    if isinstance(value, bool):
        return [value, not value, int(value)]
    if isinstance(value, int | float):
        return [value, value + 1, value - 1, float(value), -value]
    if isinstance(value, str):
        out: list[Any] = [value, value.upper(), value.lower()]
        if len(value) >= 7 and value[4] == "-":
            out += [int(value[:4]), value[:7], value[:10], value[:4] + "-12"]
        return out
    return [value]


def _orderable_values(values: list[Any]) -> list[Any]:
    return [
        v
        for v in values
        if (isinstance(v, int | float) and not isinstance(v, bool))
        or (isinstance(v, str) and len(v) >= 7 and v[4:5] == "-" and _is_period(v))
    ]


def _is_period(text: str) -> bool:
    try:
        parse_iso_period(text)
    except ValueError:
        return False
    return True


def _globs(texts: list[str]) -> list[str]:
    out = list(_GLOBS)
    for t in texts:
        if t:
            out += [t[0] + "*", "*" + t[-1], "?" + t[1:], t]
    return out


def _regexes(texts: list[str]) -> list[str]:
    out = list(_REGEXES)
    for t in texts:
        if t:
            out += ["^" + re.escape(t[:2]), re.escape(t[-2:]) + "$", re.escape(t)]
    return out


def _pick(seen: list[Any], pool: list[Any]) -> st.SearchStrategy[Any]:
    if not seen:
        return st.sampled_from(pool)
    return st.one_of(st.sampled_from(seen), st.sampled_from(pool))


def _conditions_for(
    field: str, seen: list[Any], pool: list[Any], ordering: bool
) -> st.SearchStrategy[Condition]:
    """Every operator on ``field``, with values near the ``seen`` ones."""
    near = [r for v in seen for r in _related(v)]
    values = _pick(near, pool)
    texts = [v for v in seen if isinstance(v, str)]
    options = [
        st.builds(Condition, field=st.just(field), op=st.sampled_from(["eq", "ne"]), value=values),
        st.builds(
            Condition,
            field=st.just(field),
            op=st.just("in"),
            value=st.lists(values, min_size=1, max_size=3),
        ),
        st.builds(
            Condition,
            field=st.just(field),
            op=st.just("glob"),
            value=st.sampled_from(_globs(texts)),
        ),
        st.builds(
            Condition,
            field=st.just(field),
            op=st.just("regex"),
            value=st.sampled_from(_regexes(texts)),
        ),
        st.builds(Condition, field=st.just(field), op=st.sampled_from(["exists", "missing"])),
    ]
    if ordering:
        bounds = _pick(_orderable_values(near), _orderable_values(pool) or [0])
        options.append(
            st.builds(
                Condition,
                field=st.just(field),
                op=st.sampled_from(["lt", "le", "gt", "ge"]),
                value=bounds,
            )
        )
    return st.one_of(options)


def _date_conditions(field: str, moments: list[datetime]) -> st.SearchStrategy[Condition]:
    texts = [m.isoformat().replace("+00:00", "Z") for m in moments]
    near: list[Any] = [t[:n] for t in texts for n in (7, 10, len(t))] + _DATES
    near += [m.year for m in moments]  # a bare year means that year
    values = st.sampled_from(near)
    return st.one_of(
        st.builds(
            Condition,
            field=st.just(field),
            op=st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]),
            value=values,
        ),
        st.builds(
            Condition,
            field=st.just(field),
            op=st.just("in"),
            value=st.lists(values, min_size=1, max_size=2),
        ),
    )


def _words_of(records: list[Record]) -> list[str]:
    texts = [t for r in records for t in (r.title, r.description, *r.tags) if t]
    for r in records:
        texts += [v for path in _META_PATHS for v in _scalars_at(r, path) if isinstance(v, str)]
    words = [w for t in texts for w in re.findall(r"[A-Za-z0-9]+", t)]
    return words + [w[:2] + "*" for w in words]


def _scalars_at(record: Record, path: str) -> list[Any]:
    return [
        n
        for n in nodes_at(record.metadata, path.removeprefix("metadata."))
        if not isinstance(n, dict | list)
    ]


def _boxes_near(records: list[Record]) -> list[BBox]:
    out = []
    for r in records:
        box = r.metadata.get("bbox")
        if not isinstance(box, list):
            continue
        w, s, e, n = box
        candidates = [
            (w, s, e, n),
            (e, n, e + 5, n),
            (w - 5, s, w, s),
            (e - 360, s, e - 355, n),
            (w + 360, s, w + 365, n),
        ]
        out += [
            BBox(west=a, south=b, east=c, north=d)
            for a, b, c, d in candidates
            if all(-360 <= x <= 360 for x in (a, c))
        ]
    return out


def _times_near(records: list[Record]) -> list[TimeRange]:
    texts = [
        v
        for r in records
        for v in (r.metadata.get(k) for k in ("datetime", "start_datetime", "end_datetime"))
        if isinstance(v, str)
    ]
    forms = [f"{t}" for t in texts] + [f"../{t}" for t in texts] + [f"{t}/.." for t in texts]
    return [TimeRange.parse(f) for f in forms]


@st.composite
def search_cases(draw: st.DrawFn, max_records: int = 10) -> tuple[list[Record], Query]:
    """Records and a query over them whose values are often close to the records' own."""
    records = draw(search_records(max_records))
    meta_conditions = [
        _conditions_for(
            path, [v for r in records for v in _scalars_at(r, path)], [*_SCALARS, 2019, 2021], True
        )
        for path in _META_PATHS
    ]
    record_conditions = [
        _conditions_for(
            name, [getattr(r, name) for r in records if getattr(r, name) is not None], pool, False
        )
        for name, pool in (
            ("kind", _KINDS),
            ("title", _TITLES[1:]),
            ("description", _DESCRIPTIONS[1:]),
            ("created_by", _USERS[1:]),
            ("schema_name", ["s1"]),
            ("id", ["r00-a", "r01-b"]),
            ("status", list(RECORD_STATUSES)),
        )
    ]
    record_conditions += [
        _conditions_for("tag", [t for r in records for t in r.tags], _TAGS, False),
        st.builds(
            Condition,
            field=st.just("version"),
            op=st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]),
            value=st.integers(0, 4),
        ),
        _date_conditions("created_at", [r.created_at for r in records] or _CREATED),
    ]
    condition = st.one_of(*meta_conditions, *record_conditions)
    boxes = _boxes_near(records)
    times = _times_near(records)
    query = Query(
        conditions=draw(st.lists(condition, max_size=3)),
        text=draw(
            st.none()
            | st.lists(_pick(_words_of(records), _WORDS), min_size=1, max_size=2).map(" ".join)
        ),
        bbox=draw(st.none() | _search_bboxes | (st.sampled_from(boxes) if boxes else st.nothing())),
        time=draw(st.none() | _search_time() | (st.sampled_from(times) if times else st.nothing())),
        sort=draw(
            st.lists(
                st.builds(SortKey, field=st.sampled_from(_SORTS), descending=st.booleans()),
                max_size=2,
                unique_by=lambda k: k.field,
            )
        ),
        limit=None,
    )
    return records, query


_search_bboxes = st.builds(
    lambda w, e, a, b: BBox(west=w, south=min(a, b), east=e, north=max(a, b)),
    st.sampled_from(_LONS) | st.integers(-360, 360),
    st.sampled_from(_LONS) | st.integers(-360, 360),
    st.sampled_from(_LATS),
    st.sampled_from(_LATS),
)


@st.composite
def _search_time(draw: st.DrawFn) -> TimeRange:
    a, b = sorted(draw(st.lists(st.sampled_from(_DATES), min_size=2, max_size=2)), key=_start)
    form = draw(st.sampled_from(["{a}/{b}", "{a}/..", "../{b}", "{a}", "{a}/"]))
    return TimeRange.parse(form.format(a=a, b=b))
