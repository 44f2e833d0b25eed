"""The models: JSON round trips, validation, ids, query parsing, bbox and time parsing."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from arcodex.errors import QueryError
from arcodex.model import (
    ID_PATTERN,
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
    Locator,
    Operation,
    OperationError,
    PlannedPath,
    Query,
    Record,
    SortKey,
    TimeRange,
    check_metadata,
    new_id,
    normalize_bbox,
    parse_iso_period,
    parse_term,
    parse_value,
)
from arcodex.testing import strategies
from arcodex.testing._reference import reference_lon_contains

ROUND_TRIPS = settings(max_examples=60, deadline=None)


def assert_round_trip(model: pydantic.BaseModel) -> None:
    """JSON text and JSON-ready dict both come back as an equal model."""
    cls = type(model)
    assert cls.model_validate_json(model.model_dump_json()) == model
    assert cls.model_validate(model.model_dump(mode="json")) == model


# -- round trips ------------------------------------------------------------------------------


@ROUND_TRIPS
@given(strategies.records())
def test_record_round_trip(record: Record) -> None:
    assert_round_trip(record)


@ROUND_TRIPS
@given(strategies.artifacts())
def test_artifact_round_trip(artifact: Artifact) -> None:
    assert_round_trip(artifact)


@pytest.mark.parametrize(
    "locator",
    [
        LocalPath(path="data/a.nc"),
        FsspecUrl(url="s3://bucket/a.zarr", profile="archive"),
        FsspecUrl(url="https://example.org/a.nc"),
        ExternalUri(uri="https://doi.org/10.1/x"),
        PlannedPath(path="zarr/{id}.zarr", profile="archive"),
        Inline(data="aGk=", encoding="base64"),
        Inline(data="text ünïcode"),
        BundleMember(bundle="rec-1", member="dir/file.txt"),
    ],
)
def test_each_locator_round_trips_and_keeps_its_type(locator: Any) -> None:
    artifact = Artifact(locator=locator)
    assert_round_trip(artifact)
    again = Artifact.model_validate_json(artifact.model_dump_json())
    assert type(again.locator) is type(locator)
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Locator)
    assert adapter.validate_json(adapter.dump_json(locator)) == locator


@ROUND_TRIPS
@given(strategies.operations())
def test_operation_round_trip(operation: Operation) -> None:
    assert_round_trip(operation)


@ROUND_TRIPS
@given(strategies.queries())
def test_query_round_trip(query: Query) -> None:
    assert_round_trip(query)


@ROUND_TRIPS
@given(strategies.conditions())
def test_condition_round_trip(condition: Condition) -> None:
    assert_round_trip(condition)
    assert type(Condition.model_validate_json(condition.model_dump_json()).value) is type(
        condition.value
    )


@ROUND_TRIPS
@given(strategies.field_summaries())
def test_field_summary_round_trip(summary: FieldSummary) -> None:
    assert_round_trip(summary)


@ROUND_TRIPS
@given(strategies.bboxes())
def test_bbox_round_trip(bbox: BBox) -> None:
    assert_round_trip(bbox)


@ROUND_TRIPS
@given(strategies.time_ranges())
def test_time_range_round_trip(time: TimeRange) -> None:
    assert_round_trip(time)


def test_small_models_round_trip() -> None:
    assert_round_trip(Lineage(operation_id="op", sources=["a", "b"], relation="converted_from"))
    assert_round_trip(OperationError(type="StorageError", message="disk full"))
    assert_round_trip(SortKey(field="netcdf.attrs.title", descending=True))


@ROUND_TRIPS
@given(strategies.conditions())
def test_condition_text_form_parses_back(condition: Condition) -> None:
    """``to_text`` is the CLI form: parsing it gives the same condition back."""
    text = condition.to_text()
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    if condition.field == "tags" or any(c.isspace() for c in text):
        return  # 'tags' reads as 'tag'; terms are split on spaces
    if condition.op == "in" and any("," in str(v) or str(v) != str(v).strip() for v in values):
        return  # list items are split on commas and stripped
    assert parse_term(text) == condition


@pytest.mark.parametrize(
    "condition",
    [
        Condition(field="x", value=""),
        Condition(field="x", value="[a]"),
        Condition(field="x", op="ne", value="[a,b]"),
        Condition(field="x", op="in", value=["", "a"]),
    ],
)
def test_condition_text_form_quotes_what_would_read_differently(condition: Condition) -> None:
    assert parse_term(condition.to_text()) == condition


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "has space", "-lead", ".lead", "a/b", "x" * 201, "é", "a\nb"])
def test_bad_record_id(bad: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        Record(id=bad)
    with pytest.raises(pydantic.ValidationError):
        Artifact(id=bad, locator=LocalPath(path="a"))


@pytest.mark.parametrize("good", ["a", "0", "ABC-def_1.2:3@x+y", "x" * 200])
def test_good_record_id(good: str) -> None:
    assert Record(id=good).id == good


@pytest.mark.parametrize("bad", ["", "Dataset", "1abc", "a b", "a.b", "x" * 65])
def test_bad_kind_and_role(bad: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        Record(kind=bad)
    with pytest.raises(pydantic.ValidationError):
        Artifact(role=bad, locator=LocalPath(path="a"))


@pytest.mark.parametrize(
    ("metadata", "where"),
    [
        ({"a.b": 1}, "'a.b'"),
        ({"": 1}, "''"),
        ({"x": {"y.z": 1}}, "metadata.x"),
        ({"x": [{"y.z": 1}]}, "metadata.x[0]"),
        ({"x": math.nan}, "metadata.x"),
        ({"x": [1, math.inf]}, "metadata.x[1]"),
        ({"x": {"y": -math.inf}}, "metadata.x.y"),
        ({"x": object()}, "metadata.x"),
        ({"x": {1, 2}}, "metadata.x"),
        ({"x": 2**63}, "metadata.x"),
        ({"x": -(2**63) - 1}, "metadata.x"),
    ],
)
def test_bad_metadata_names_the_path(metadata: dict[str, Any], where: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Record(metadata=metadata)
    assert where in str(info.value)
    with pytest.raises(ValueError, match="metadata"):
        check_metadata(metadata)


def test_metadata_becomes_plain_json() -> None:
    class Scalar:
        def item(self) -> float:
            return 1.5

    record = Record(
        metadata={
            "when": datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1))),
            "naive": datetime(2020, 1, 2),
            "day": datetime(2020, 1, 2).date(),
            "pair": (1, 2),
            "numpyish": Scalar(),
        }
    )
    assert record.metadata == {
        "when": "2020-01-02T02:04:05Z",
        "naive": "2020-01-02T00:00:00Z",
        "day": "2020-01-02",
        "pair": [1, 2],
        "numpyish": 1.5,
    }


@pytest.mark.parametrize(
    "bbox",
    [
        [1, 2, 3],
        [1, 2, 3, 4, 5],
        [0, 10, 1, 5],
        [0, -91, 1, 0],
        [0, 0, 1, 91],
        [0, 0, 361, 1],
        [-361, 0, 1, 1],
        ["0", 0, 1, 1],
        [True, 0, 1, 1],
        [None, 0, 1, 1],
        "0,0,1,1",
        {"west": 0},
    ],
)
def test_bad_bbox_metadata(bbox: Any) -> None:
    with pytest.raises(pydantic.ValidationError, match="bbox"):
        Record(metadata={"bbox": bbox})


@pytest.mark.parametrize(
    "bbox", [[-10, 40, 5, 60], [170, -10, -170, 10], [0, -90, 360, 90], [-180, 0, 180, 0]]
)
def test_good_bbox_metadata(bbox: list[float]) -> None:
    assert Record(metadata={"bbox": bbox}).metadata["bbox"] == bbox


@pytest.mark.parametrize(
    "metadata",
    [
        {"datetime": "yesterday"},
        {"datetime": "2020"},
        {"datetime": "2020-13-01"},
        {"datetime": "2020-02-30"},
        {"datetime": "2020-01-01T25:00:00Z"},
        {"datetime": 2020},
        {"start_datetime": "2021-01-02", "end_datetime": "2020-12-31"},
        {"start_datetime": "2021-01-01", "end_datetime": "2020-12-31"},  # just after its end
        {"end_datetime": ["2020-01-01"]},
    ],
)
def test_bad_dates(metadata: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="datetime"):
        Record(metadata=metadata)


def test_good_dates() -> None:
    Record(metadata={"datetime": "2020-06"})
    Record(metadata={"start_datetime": "2020-06-15", "end_datetime": "2020-06"})
    Record(
        metadata={
            "start_datetime": "2020-06-15T12:00:00+02:00",
            "end_datetime": "2020-06-15T10:00:00Z",
        }
    )
    Record(metadata={"datetime": None})


@pytest.mark.parametrize("tags", [["a b"], ["a,b"], [""], ["  "], ["a\tb"]])
def test_bad_tags(tags: list[str]) -> None:
    with pytest.raises(pydantic.ValidationError, match="tag"):
        Record(tags=tags)


def test_tags_are_stripped_and_unique() -> None:
    assert Record(tags=[" a", "b", "a ", "b"]).tags == ["a", "b"]


def test_numbers_a_database_can_hold() -> None:
    """Counts and versions are 64-bit in every catalog database."""
    with pytest.raises(pydantic.ValidationError):
        Artifact(locator=LocalPath(path="a"), size_bytes=-1)
    with pytest.raises(pydantic.ValidationError):
        Artifact(locator=LocalPath(path="a"), size_bytes=2**63)
    with pytest.raises(pydantic.ValidationError):
        Record(version=0)
    with pytest.raises(pydantic.ValidationError):
        Record(version=2**63)


def test_extra_fields_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        Record.model_validate({"id": "a", "colour": "red"})
    with pytest.raises(pydantic.ValidationError):
        Operation.model_validate({"action": "add", "colour": "red"})
    with pytest.raises(pydantic.ValidationError):
        Artifact.model_validate({"locator": {"type": "local_path", "path": "a", "colour": "red"}})
    with pytest.raises(pydantic.ValidationError):
        Artifact.model_validate({"locator": {"type": "carrier_pigeon", "path": "a"}})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"field": "x", "op": "in", "value": []},
        {"field": "x", "op": "in", "value": "a"},
        {"field": "x", "op": "eq", "value": ["a"]},
        {"field": "x", "op": "lt", "value": "abc"},
        {"field": "x", "op": "lt", "value": True},
        {"field": "x", "op": "lt", "value": None},
        {"field": "x", "op": "glob", "value": 1},
        {"field": "x", "op": "regex", "value": "(["},
        {"field": "a..b"},
        {"field": "1a"},
        {"field": "a b"},
        {"field": ""},
        {"field": "x", "op": "like", "value": "a"},
    ],
)
def test_bad_conditions(kwargs: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        Condition(**kwargs)


def test_bad_boxes_and_ranges() -> None:
    with pytest.raises(pydantic.ValidationError):
        BBox(west=0, south=10, east=1, north=5)
    with pytest.raises(pydantic.ValidationError):
        BBox(west=400, south=0, east=1, north=5)
    with pytest.raises(pydantic.ValidationError):
        TimeRange(start=datetime(2021, 1, 1, tzinfo=UTC), end=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(pydantic.ValidationError):
        Query(limit=0)
    with pytest.raises(pydantic.ValidationError):
        Operation(action="add", status="exploded")  # type: ignore[arg-type]


# -- ids ---------------------------------------------------------------------------------------------


def test_new_ids_are_unique_sorted_and_valid() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids), "ids sort in creation order"
    for value in ids[:50]:
        assert len(value) == 26
        assert value == value.lower()
        Record(id=value)
    assert Record().id != Record().id


def test_new_ids_are_unique_across_threads() -> None:
    found: list[list[str]] = [[], []]

    def work(slot: int) -> None:
        found[slot] = [new_id() for _ in range(2000)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found[0]) | set(found[1])) == 4000


def test_id_pattern_is_anchored() -> None:
    import re

    assert re.match(ID_PATTERN, "ok-id") is not None
    assert re.match(ID_PATTERN, "ok id") is None


# -- query parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("site=MHD", Condition(field="site", op="eq", value="MHD")),
        ("year>=2020", Condition(field="year", op="ge", value=2020)),
        ("year>2020", Condition(field="year", op="gt", value=2020)),
        ("year<2020", Condition(field="year", op="lt", value=2020)),
        ("year<=2020", Condition(field="year", op="le", value=2020)),
        ("a>=-1", Condition(field="a", op="ge", value=-1)),
        ("ratio!=0.5", Condition(field="ratio", op="ne", value=0.5)),
        ("ratio<1e3", Condition(field="ratio", op="lt", value=1000.0)),
        ("ok=true", Condition(field="ok", value=True)),
        ("ok=False", Condition(field="ok", value=False)),
        ("x=null", Condition(field="x", value=None)),
        ("x='1'", Condition(field="x", value="1")),
        ('x="a b"', Condition(field="x", value="a b")),
        ("a=b=c", Condition(field="a", value="b=c")),
        ("expr=x>y", Condition(field="expr", value="x>y")),
        ("obs>=2020-06-15T12:00Z", Condition(field="obs", op="ge", value="2020-06-15T12:00Z")),
        ("title~Mace*", Condition(field="title", op="glob", value="Mace*")),
        ("institution~/^NOC/", Condition(field="institution", op="regex", value="^NOC")),
        ("x~/", Condition(field="x", op="glob", value="/")),
        ("site=[MHD,TAC]", Condition(field="site", op="in", value=["MHD", "TAC"])),
        ("n=[1, 2.5,true,,'3']", Condition(field="n", op="in", value=[1, 2.5, True, "3"])),
        ("doi:exists", Condition(field="doi", op="exists")),
        ("doi:missing", Condition(field="doi", op="missing")),
        ("tags=ch4", Condition(field="tag", value="ch4")),
        ("tag=ch4", Condition(field="tag", value="ch4")),
        ("netcdf.attrs.institution=NOC", Condition(field="netcdf.attrs.institution", value="NOC")),
        ("metadata.title=x", Condition(field="metadata.title", value="x")),
        ("  padded=1  ", Condition(field="padded", value=1)),
    ],
)
def test_parse_term(term: str, expected: Condition) -> None:
    assert parse_term(term) == expected
    assert type(parse_term(term).value) is type(expected.value)
    assert Query.parse([term]).conditions == [expected]


def test_condition_paths() -> None:
    assert parse_term("site=x").metadata_path == "site"
    assert parse_term("metadata.title=x").metadata_path == "title"
    assert parse_term("title=x").metadata_path is None
    assert parse_term("tag=x").metadata_path is None


@pytest.mark.parametrize(
    "term",
    [
        "site",
        "=x",
        "site=",
        "1site=x",
        "si te=x",
        "site~",
        "site~/[/",
        "site=[]",
        "site=[,]",
        "year>abc",
        "year>true",
        "year<null",
        "a..b=1",
        "site:exact",
        "site!=",
        "x<2020-13",
        "x>=2020-02-30",
    ],
)
def test_parse_bad_term_names_it(term: str) -> None:
    with pytest.raises(QueryError) as info:
        Query.parse([term])
    assert repr(term) in str(info.value) or term in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("term", "needle"),
    [
        ("site==MHD", "'==' is not an operator (did you mean '='?)"),
        ("year=>2020", "'=>' is not an operator (did you mean '>='?)"),
        ("year=<2020", "did you mean '<='?"),
        ("site<>MHD", "did you mean '!='?"),
        ("site!==MHD", "'!==' is not an operator"),
        ("title~=Mace*", "did you mean '~'?"),
        ("year>>2020", "'>>' is not an operator"),
        ("=MHD", "no field before '='"),
        ("site=[MHD,TAC", "the list is not closed"),
        ("site!=[MHD,TAC]", "a list goes with = only"),
    ],
)
def test_malformed_terms_are_refused_with_the_operators(term: str, needle: str) -> None:
    """Typos that would otherwise read as a value no record has, so match nothing."""
    with pytest.raises(QueryError) as info:
        parse_term(term)
    message = str(info.value)
    assert needle in message and repr(term) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ('site="=MHD"', Condition(field="site", value="=MHD")),
        ("site!='>3'", Condition(field="site", op="ne", value=">3")),
        ('title~"=M*"', Condition(field="title", op="glob", value="=M*")),
        ('title~"a b*"', Condition(field="title", op="glob", value="a b*")),
        ('path~"/tmp/"', Condition(field="path", op="glob", value="/tmp/")),
        ("site = MHD", Condition(field="site", value="MHD")),
        ("year >= 2020", Condition(field="year", op="ge", value=2020)),
    ],
)
def test_quotes_and_spaces_around_operators(term: str, expected: Condition) -> None:
    assert parse_term(term) == expected


_OPERATOR_SYMBOLS = ["=", "!=", ">", ">=", "<", "<=", "~"]


@settings(max_examples=300, deadline=None)
@given(
    field=st.from_regex(r"^[A-Za-z_][A-Za-z0-9_]{0,6}(\.[A-Za-z0-9_]{1,6})?$", fullmatch=True),
    symbol=st.sampled_from(_OPERATOR_SYMBOLS),
    stray=st.sampled_from(sorted("=!<>~")),
    value=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
)
def test_a_doubled_operator_is_always_refused(
    field: str, symbol: str, stray: str, value: str
) -> None:
    """``FIELD`` + operator + another operator character + anything is a typo, never a value."""
    assume(symbol + stray not in ("<=", ">="))  # those two are operators themselves
    term = f"{field}{symbol}{stray}{value}"
    with pytest.raises(QueryError) as info:
        parse_term(term)
    assert "\n" not in str(info.value)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab.=!<>~:[],'\"/* 1")), max_size=12))
def test_any_term_parses_or_is_refused_in_one_line(term: str) -> None:
    """A term is a condition whose value is not an operator typo, or one QueryError line."""
    error: QueryError | None = None
    try:
        condition = parse_term(term)
    except QueryError as exc:
        error = exc
    if error is not None:
        assert "\n" not in str(error) and repr(term) in str(error)
        return
    if isinstance(condition.value, str) and condition.value[:1] in set("=!<>~"):
        assert any(quote in term for quote in "\"'"), (term, condition)  # only quoted


def test_parse_whole_query() -> None:
    query = Query.parse(
        "site=MHD year>=2020",
        text="mace head",
        bbox="-10,40,5,60",
        time="2020/..",
        sort="-created_at, title",
        limit=5,
        cursor="abc",
    )
    assert query.conditions == [parse_term("site=MHD"), parse_term("year>=2020")]
    assert query.text == "mace head"
    assert query.bbox == BBox(west=-10, south=40, east=5, north=60)
    assert query.time == TimeRange(start=datetime(2020, 1, 1, tzinfo=UTC))
    assert query.sort == [SortKey(field="created_at", descending=True), SortKey(field="title")]
    assert query.limit == 5
    assert query.cursor == "abc"
    assert query.to_terms() == ["site=MHD", "year>=2020"]
    assert Query.parse(text="").text is None
    assert Query.parse(bbox=[1, 2, 3, 4]).bbox == BBox(west=1, south=2, east=3, north=4)
    assert Query.parse(sort=["+a", "-b"]).sort == [
        SortKey(field="a"),
        SortKey(field="b", descending=True),
    ]
    assert Query.parse(limit=None).limit is None


def test_statuses_asked_for() -> None:
    assert Query.parse(["site=x"]).statuses is None
    assert Query.parse(["status=deleted"]).statuses == ["deleted"]
    assert Query.parse(["status=[active,deleted]"]).statuses == ["active", "deleted"]
    assert Query.parse(["status!=active"]).statuses is None


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"sort": "-1x"}, "sort"),
        ({"sort": "a..b"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": -3}, "limit"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "0,10,1,5"}, "bbox"),
        ({"bbox": "nan,0,1,1"}, "bbox"),
        ({"bbox": "0,0,500,1"}, "bbox"),
        ({"time": "someday"}, "time"),
        ({"time": "2021/2020"}, "time"),
        ({"time": "2020-13"}, "time"),
    ],
)
def test_parse_bad_options(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(QueryError, match=needle):
        Query.parse(**kwargs)


# -- bbox normalisation ---------------------------------------------------------------------------------

_lons = st.integers(-720, 720).map(lambda v: v / 2)  # half degrees: exact in binary


@settings(max_examples=300, deadline=None)
@given(
    west=_lons,
    east=_lons,
    points=st.lists(st.integers(-360, 360).map(lambda v: v / 2), max_size=30),
)
def test_normalize_bbox_keeps_every_longitude(
    west: float, east: float, points: list[float]
) -> None:
    """A longitude is in the box iff it is in one of the normalised boxes."""
    boxes = normalize_bbox((west, -10, east, 10))
    assert 1 <= len(boxes) <= 2
    for w, s, e, n in boxes:
        assert -180 <= w <= e <= 180
        assert (s, n) == (-10, 10)
    for lon in [*points, -180.0, 180.0, west if -180 <= west <= 180 else 0.0]:
        inside = any(
            w <= lon <= e or w <= lon + 360 <= e or w <= lon - 360 <= e for w, _, e, _ in boxes
        )
        assert inside == reference_lon_contains(west, east, lon), (west, east, lon, boxes)


@pytest.mark.parametrize(
    ("bbox", "expected"),
    [
        ((-10, 0, 10, 1), [(-10, 0, 10, 1)]),
        ((170, 0, -170, 1), [(170, 0, 180, 1), (-180, 0, -170, 1)]),
        ((350, 0, 355, 1), [(-10, 0, -5, 1)]),
        ((0, 0, 360, 1), [(-180, 0, 180, 1)]),
        ((-180, 0, 180, 1), [(-180, 0, 180, 1)]),
        ((190, 0, 170, 1), [(-170, 0, 170, 1)]),
    ],
)
def test_normalize_bbox_examples(
    bbox: tuple[float, ...], expected: list[tuple[float, ...]]
) -> None:
    assert normalize_bbox(bbox) == expected
    assert BBox.parse(",".join(str(v) for v in bbox)).boxes() == expected


# -- time ranges ----------------------------------------------------------------------------------------------


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


_LAST = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2020", _utc(2020, 1, 1), _utc(2021, 1, 1) - _LAST),
        ("2020-02", _utc(2020, 2, 1), _utc(2020, 3, 1) - _LAST),
        ("2020-12", _utc(2020, 12, 1), _utc(2021, 1, 1) - _LAST),
        ("2020-02-29", _utc(2020, 2, 29), _utc(2020, 3, 1) - _LAST),
        ("2020-06-15T12:00:00Z", _utc(2020, 6, 15, 12), _utc(2020, 6, 15, 12)),
        ("2020-06-15T12:00+02:00", _utc(2020, 6, 15, 10), _utc(2020, 6, 15, 10)),
        (
            "2020-06-15 12:00:00.5",
            _utc(2020, 6, 15, 12, 0, 0, 500000),
            _utc(2020, 6, 15, 12, 0, 0, 500000),
        ),
        ("2020-01/2021-06", _utc(2020, 1, 1), _utc(2021, 7, 1) - _LAST),
        ("2020/..", _utc(2020, 1, 1), None),
        ("2020/", _utc(2020, 1, 1), None),
        ("../2021-06-30", None, _utc(2021, 7, 1) - _LAST),
        ("/2021", None, _utc(2022, 1, 1) - _LAST),
        ("../..", None, None),
        ("2020-06-15T12:00:00Z/2020-06-15T12:00:00Z", _utc(2020, 6, 15, 12), _utc(2020, 6, 15, 12)),
    ],
)
def test_time_range_parse(text: str, start: datetime | None, end: datetime | None) -> None:
    assert TimeRange.parse(text) == TimeRange(start=start, end=end)


@pytest.mark.parametrize(
    "text",
    ["someday", "2021/2020", "2020-13", "2020-02-30", "2020-06-15T12:00Z/2020-06-15T11:00Z", "20"],
)
def test_time_range_parse_errors(text: str) -> None:
    with pytest.raises(QueryError) as info:
        TimeRange.parse(text)
    assert text in str(info.value)


def test_iso_periods() -> None:
    assert parse_iso_period("2020") == (_utc(2020, 1, 1), _utc(2021, 1, 1))
    assert parse_iso_period("2020-12") == (_utc(2020, 12, 1), _utc(2021, 1, 1))
    assert parse_iso_period("2020-12-31") == (_utc(2020, 12, 31), _utc(2021, 1, 1))
    moment = _utc(2020, 12, 31, 23, 59, 59)
    assert parse_iso_period("2020-12-31T23:59:59Z") == (moment, moment)
    assert parse_iso_period("2021-01-01T00:59:59+01:00") == (moment, moment)
    with pytest.raises(ValueError, match="ISO"):
        parse_iso_period("June")


# -- typed values ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("-1", -1),
        ("+7", 7),
        ("007", 7),
        ("1.5", 1.5),
        ("-.5", -0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("null", None),
        ("None", None),
        ("'1'", "1"),
        ('"true"', "true"),
        ('""', ""),
        ("'", "'"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("1_000", "1_000"),
        ("0x10", "0x10"),
        ("2020-01", "2020-01"),
        ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
        ("MHD", "MHD"),
        ("a b", "a b"),
        ("", ""),
    ],
)
def test_parse_value(text: str, expected: Any) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


@given(st.integers())
def test_parse_value_integers(number: int) -> None:
    assert parse_value(str(number)) == number


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_parse_value_floats(number: float) -> None:
    value = parse_value(repr(number))
    assert value == number
    assert isinstance(value, float)
