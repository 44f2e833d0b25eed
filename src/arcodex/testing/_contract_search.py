"""The search half of the backend contract: conditions, text, space, time, sort, pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcodex.backends import CatalogBackend
from arcodex.errors import QueryError
from arcodex.model import Artifact, Condition, LocalPath, Query, Record, SortKey
from arcodex.testing import strategies
from arcodex.testing._reference import order_problems, reference_search
from arcodex.testing._support import (
    PROPERTY_SETTINGS,
    ContractBase,
    all_pages,
    clear_backend,
    ids_of,
    search_ids,
    where,
)

__all__ = ["SearchContract"]


class SearchContract(ContractBase):
    """What ``search`` and ``count`` return, checked on :func:`~arcodex.testing.sample_records`."""

    # -- conditions on metadata --------------------------------------------------------------

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["site=MHD"], ["s1", "s6"]),
            (["site=mhd"], ["s3"]),
            (["site=XXX"], []),
            (["year=2020"], ["s1"]),
            (["year=2020.0"], ["s1"]),
            (["year='2020'"], ["s4"]),
            (["ratio=0.5"], ["s1", "s6"]),
            (["ratio=2"], ["s3"]),
            (["ok=true"], ["s1"]),
            (["ok=false"], ["s2"]),
            (["ok=null"], ["s4"]),
            (["ok=1"], []),
            (["inst.name=NOC"], ["s1"]),
            (["inst.code=7"], ["s1"]),
            (["vars=co2"], ["s1"]),
            (["stations.code=B"], ["s4"]),
            (["stations.height=5"], ["s4"]),
            (["obs=2020-06-15"], ["s1"]),
            (["metadata.title=shadowed"], ["s4"]),
            (["metadata.site=TAC"], ["s2"]),
            (["site=[TAC,mhd]"], ["s2", "s3"]),
            (["year=[2019,2021]"], ["s2", "s3"]),
            (["vars=[n2o,zzz]"], ["s2"]),
            (["site=MHD", "ratio=0.5"], ["s1", "s6"]),
            (["site=MHD", "year=2020"], ["s1"]),
        ],
    )
    def test_equality(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            # ne is "not eq": records without the field match, deleted ones never do.
            (["site!=MHD"], ["s2", "s3", "s4"]),
            (["vars!=ch4"], ["s2", "s3", "s4", "s6"]),
            (["year!=2020"], ["s2", "s3", "s4", "s6"]),
            (["ok!=true"], ["s2", "s3", "s4", "s6"]),
            (["inst.name!=NOC"], ["s2", "s3", "s4", "s6"]),
            (["site:exists"], ["s1", "s2", "s3", "s6"]),
            (["site:missing"], ["s4"]),
            (["vars:exists"], ["s1", "s2", "s3"]),
            (["inst:exists"], ["s1", "s2", "s3"]),
            (["inst.code:exists"], ["s1"]),
            (["inst.code:missing"], ["s2", "s3", "s4", "s6"]),
            (["ok:exists"], ["s1", "s2", "s4"]),
            (["stations.height:exists"], ["s4"]),
            (["never=1"], []),
            (["never!=1"], ["s1", "s2", "s3", "s4", "s6"]),
            (["never:exists"], []),
            (["never:missing"], ["s1", "s2", "s3", "s4", "s6"]),
            (["never~*"], []),
            (["never>1"], []),
        ],
    )
    def test_negation_and_presence(
        self, sample: CatalogBackend, terms: list[str], expected: list[str]
    ) -> None:
        assert search_ids(sample, *terms) == expected

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["year>2019"], ["s1", "s2"]),
            (["year>=2020"], ["s1", "s2"]),
            (["year<2021"], ["s1", "s3"]),
            (["year<=2019"], ["s3"]),
            (["ratio<1"], ["s1", "s6"]),
            (["ratio<=1.5"], ["s1", "s2", "s6"]),
            (["ratio>0.5"], ["s2", "s3"]),
            (["ratio>=2"], ["s3"]),
            (["ratio>-1.5e3"], ["s1", "s2", "s3", "s6"]),
            (["inst.code>6.5"], ["s1"]),
            (["year>=2019", "year<2021"], ["s1", "s3"]),
            # Dates compare by whole periods.
            (["obs>2020"], ["s2"]),
            (["obs>=2020"], ["s1", "s2", "s6"]),
            (["obs<2021"], ["s1", "s6"]),
            (["obs<=2020-06"], ["s1"]),
            (["obs>2020-06"], ["s2", "s6"]),
            (["obs<2020-06-15"], []),
            (["obs<=2020-06-15"], ["s1"]),
            (["obs>=2020-06-15T12:00:00Z"], ["s2", "s6"]),
            (["obs>2020-12-31T23:59:59Z"], ["s2"]),
            (["obs>=2021-01-01T01:00:00+01:00"], ["s2"]),
            (["obs<2021-01-01T01:00:00+01:00"], ["s1", "s6"]),
            (["datetime<=2019"], ["s3"]),
            (["start_datetime>=2021-01"], ["s2"]),
            # A bare year compared with a date field means that year.
            (["obs>=2021"], ["s2"]),
            (["obs<=2020"], ["s1", "s6"]),
            (["start_datetime>=2021"], ["s2"]),
        ],
    )
    def test_ordering(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["site~M*"], ["s1", "s6"]),
            (["site~m*"], ["s3"]),
            (["site~?HD"], ["s1", "s6"]),
            (["site~[mT]*"], ["s2", "s3"]),
            (["site~[^M]*"], ["s2", "s3"]),
            (["site~*"], ["s1", "s2", "s3", "s6"]),
            (["inst.name~*o*"], ["s2", "s3"]),
            (["vars~c*"], ["s1"]),
            (["stations.code~[AB]"], ["s4"]),
            (["obs~2020-*"], ["s1", "s6"]),
            (["year~20*"], ["s4"]),
            (["site~/^m/"], ["s3"]),
            (["site~/(?i)^mhd$/"], ["s1", "s3", "s6"]),
            (["inst.name~/^[A-Z]+$/"], ["s1"]),
            (["vars~/o$/"], ["s2"]),
            (["obs~/T00/"], ["s2"]),
            (["site~/HD/"], ["s1", "s6"]),
        ],
    )
    def test_patterns(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    # -- conditions on record fields -------------------------------------------------------------

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["kind=dataset"], ["s1", "s2", "s6"]),
            (["kind!=dataset"], ["s3", "s4"]),
            (["kind=[run,document]"], ["s3", "s4"]),
            (["id=s2"], ["s2"]),
            (["id~s[12]"], ["s1", "s2"]),
            (["title~Mace*"], ["s1"]),
            (["title~/nitrous/"], ["s2"]),
            (["title:missing"], ["s3"]),
            (["title!=Station list"], ["s1", "s2", "s3", "s6"]),
            (["description:exists"], ["s1", "s3"]),
            (["created_by=ana"], ["s1"]),
            (["created_by!=ana"], ["s2", "s3", "s4", "s6"]),
            (["created_by:missing"], ["s3", "s4", "s6"]),
            (["updated_by:missing"], ["s1", "s2", "s3", "s4", "s6"]),
            (["schema_name=obs"], ["s2"]),
            (["schema_version:exists"], []),
            (["version>=2"], ["s2", "s3"]),
            (["version=1"], ["s1", "s4", "s6"]),
            (["version<3"], ["s1", "s2", "s4", "s6"]),
            (["status=deprecated"], ["s4"]),
            (["status=[planned,deprecated]"], ["s4", "s6"]),
            (["status!=active"], ["s4", "s6"]),
            (["created_at>=2020-07"], ["s2", "s3"]),
            (["created_at<2020-01-01T00:00:00Z"], ["s4"]),
            (["created_at<=2020-01-01"], ["s1", "s4"]),
            (["created_at=2020-01"], ["s1", "s6"]),
            (["created_at=2020-01-01T00:00:00Z"], ["s1"]),
            (["created_at!=2020-01"], ["s2", "s3", "s4"]),
            (["updated_at:exists"], ["s1", "s2", "s3", "s4", "s6"]),
        ],
    )
    def test_record_fields(
        self, sample: CatalogBackend, terms: list[str], expected: list[str]
    ) -> None:
        assert search_ids(sample, *terms) == expected

    def test_record_time_fields_take_a_bare_year(self, sample: CatalogBackend) -> None:
        assert search_ids(sample, "created_at>=2021") == ["s3"]
        assert search_ids(sample, "created_at<2020") == ["s4"]
        assert search_ids(sample, "created_at=2020") == ["s1", "s2", "s6"]
        assert search_ids(sample, "created_at>2020") == ["s3"]
        assert search_ids(sample, "created_at=[2019,2021]") == ["s3", "s4"]

    def test_record_time_fields_refuse_other_values(self, sample: CatalogBackend) -> None:
        with pytest.raises(QueryError):
            search_ids(sample, "created_at=yesterday")

    def test_deleted_only_when_asked(self, sample: CatalogBackend) -> None:
        assert "s5" not in search_ids(sample)
        assert "s5" not in search_ids(sample, "status!=active")
        assert "s5" not in search_ids(sample, "status~d*")
        assert search_ids(sample, "status=deleted") == ["s5"]
        assert search_ids(sample, "status=[active,deleted]") == ["s1", "s2", "s3", "s5"]
        assert sample.count(Query()) == 5

    @pytest.mark.parametrize(
        ("terms", "expected"),
        [
            (["tag=ch4"], ["s1"]),
            (["tags=ch4"], ["s1"]),
            (["tag=[n2o,meta]"], ["s2", "s4"]),
            (["tag!=ch4"], ["s2", "s3", "s4", "s6"]),
            (["tag:exists"], ["s1", "s2", "s4"]),
            (["tag:missing"], ["s3", "s6"]),
            (["tag~n*"], ["s2"]),
            (["tag~/^c/"], ["s1", "s2"]),
            (["tag=CH4"], []),
            (["tag=ch4", "tag=co2"], []),
            (["tag=co2", "tag=n2o"], ["s2"]),
        ],
    )
    def test_tags(self, sample: CatalogBackend, terms: list[str], expected: list[str]) -> None:
        assert search_ids(sample, *terms) == expected

    @pytest.mark.parametrize("page_size", [1, 2, None])
    def test_one_of_tags_returns_a_record_once(
        self, backend: CatalogBackend, page_size: int | None
    ) -> None:
        """A record holding several of the listed tags is one result, on every page size."""
        backend.add(
            [
                Record(id="both", tags=["ch4", "co2"]),
                Record(id="one", tags=["co2"]),
                Record(id="none"),
            ]
        )
        query = Query.parse(["tag=[ch4,co2]"])
        pages = all_pages(backend, query, page_size) if page_size else [ids_of(backend, query)]
        assert sorted(i for page in pages for i in page) == ["both", "one"]
        assert backend.count(query) == 2

    def test_tags_field_name_is_tag(self, sample: CatalogBackend) -> None:
        """``tags`` names the record's tags in a Condition as it does in a CLI term."""
        assert ids_of(sample, where(Condition(field="tags", value="ch4"))) == ["s1"]
        assert ids_of(sample, where(Condition(field="tags", op="missing"))) == ["s3", "s6"]

    def test_tags_do_not_order(self, sample: CatalogBackend) -> None:
        with pytest.raises(QueryError):
            search_ids(sample, "tag>1")

    # -- full text ----------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("methane", ["s1"]),
            ("METHANE", ["s1"]),
            ("mace head", ["s1"]),
            ("head mace", ["s1"]),
            ("mace nitrous", []),
            ("mhd", ["s1", "s3", "s6"]),
            ("noc", ["s1", "s3"]),
            ("lab", ["s3"]),
            ("n2o", ["s2"]),
            ("ma*", ["s1"]),
            ("tac*", ["s2"]),
            ("station*", ["s3", "s4"]),
            ("shadowed", ["s4"]),
            ("zebra", []),
            ("meth", []),
        ],
    )
    def test_full_text(self, sample: CatalogBackend, text: str, expected: list[str]) -> None:
        assert search_ids(sample, text=text) == expected

    def test_full_text_combines_with_conditions(self, sample: CatalogBackend) -> None:
        assert search_ids(sample, "kind=document", text="mhd") == ["s3"]
        assert sample.count(Query(text="mhd")) == 3

    def test_full_text_without_words(self, sample: CatalogBackend) -> None:
        with pytest.raises(QueryError):
            sample.search(Query(text="*"))

    # -- space and time -----------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("bbox", "expected"),
        [
            ("-180,-90,180,90", ["s1", "s2", "s3"]),
            ("0,-90,360,90", ["s1", "s2", "s3"]),
            ("-11,49,-10.5,55", []),
            ("-9.5,52,0,53", ["s1"]),
            ("-9,54,0,60", ["s1"]),  # closed boxes: touching counts
            ("175,-5,180,5", ["s2"]),
            ("-180,-5,-175,5", ["s2"]),
            ("179,-1,-179,1", ["s2"]),  # query across the antimeridian
            ("160,-90,169,90", []),
            ("-169,-90,-160,90", []),
            ("-5,0,-2,5", ["s3"]),  # record given in 0..360
            ("355,0,358,5", ["s3"]),  # query given in 0..360
            ("-0.5,11,0.5,12", []),
            ("90,-1,-90,1", ["s2"]),
            ("-90,-1,90,1", ["s3"]),
        ],
    )
    def test_bbox(self, sample: CatalogBackend, bbox: str, expected: list[str]) -> None:
        assert search_ids(sample, bbox=bbox) == expected
        assert sample.count(Query.parse(bbox=bbox)) == len(expected)

    def test_bbox_meets_across_the_antimeridian_seam(self, backend: CatalogBackend) -> None:
        """180 and -180 are one meridian: boxes touching it from both sides meet, as touching boxes do elsewhere."""
        backend.add([Record(id="east", metadata={"bbox": [170, 0, 180, 10]})])
        backend.add([Record(id="west", metadata={"bbox": [-180, 0, -170, 10]})])
        assert search_ids(backend, bbox="-180,0,-175,10") == ["east", "west"]
        assert search_ids(backend, bbox="175,0,180,10") == ["east", "west"]

    @pytest.mark.parametrize(
        ("time", "expected"),
        [
            ("../..", ["s1", "s2", "s3"]),
            ("2020", ["s1"]),
            ("2020-06", ["s1"]),
            ("2020-06-15T12:00:00Z", ["s1"]),
            ("2020-06-15T12:00:01Z", []),
            ("2020-06-16/2020-12-31", []),
            ("2020-12-31/2021-01-01", ["s2"]),
            ("2021-03-31T23:59:59Z/..", ["s2"]),
            ("2021-04/..", []),
            ("../2019-12-01", ["s3"]),
            ("../2019-11", []),
            ("2019-12-31", ["s3"]),
            ("2019/2021", ["s1", "s2", "s3"]),
            ("2021-02", ["s2"]),
        ],
    )
    def test_time(self, sample: CatalogBackend, time: str, expected: list[str]) -> None:
        assert search_ids(sample, time=time) == expected

    def test_space_time_text_and_terms_combine(self, sample: CatalogBackend) -> None:
        assert search_ids(sample, "site=MHD", bbox="-11,49,-8,55", time="2020", text="methane") == [
            "s1"
        ]
        assert search_ids(sample, "status=deleted", bbox="-11,49,-8,55", time="2020-06") == ["s5"]

    def test_terms_with_extents_keep_records_on_the_edges(self, backend: CatalogBackend) -> None:
        """A value with a time and a box: records touching the query's bounds match, those
        just past them do not, at a precision finer than a float4 (a backend may prefilter
        on rounded extents, but never drop what the exact test keeps)."""
        # 1,600,000,100 s lies between two float4 values and rounds up to 1,600,000,128.
        edge = datetime.fromtimestamp(1_600_000_100, UTC)
        east = 10.123456789  # rounds up as a float4 too

        def stamp(moment: datetime) -> str:
            return moment.isoformat().replace("+00:00", "Z")

        def record(
            rid: str, start: datetime | None, box: list[float] | None, site: str = "E"
        ) -> Record:
            meta: dict[str, Any] = {"site": site}
            if start is not None:
                meta["start_datetime"] = stamp(start)
                meta["end_datetime"] = stamp(start + timedelta(days=1))
            if box is not None:
                meta["bbox"] = box
            return Record(id=rid, metadata=meta)

        inside = [0.0, 0.0, 5.0, 5.0]
        records = [
            record("on-time", edge, inside),
            record("past-time", edge + timedelta(microseconds=1), inside),
            record("on-east", edge - timedelta(days=3), [east, 0.0, east + 1, 5.0]),
            record("past-east", edge - timedelta(days=3), [east + 1e-3, 0.0, east + 2, 5.0]),
            record("ends-on-start", edge - timedelta(days=31), inside),
            record("seam", edge - timedelta(days=3), [170.0, -1.0, -170.0, 1.0]),
            record("no-time", None, inside),
            record("no-box", edge - timedelta(days=3), None),
            record("other-site", edge, inside, site="F"),
        ]
        backend.add(records)
        window = f"{stamp(edge - timedelta(days=30))}/{stamp(edge)}"
        for terms, options in [
            (["site=E"], {"time": window, "bbox": f"-1,-1,{east!r},5"}),
            (["site=E"], {"time": window}),
            (["site=E"], {"bbox": f"{east!r},1,20,2"}),
            (["site=E"], {"bbox": "179,-0.5,-179,0.5"}),
            (["site=[E,F]"], {"time": window, "bbox": "-1,-1,180,5"}),
            (["site=E"], {"time": f"{stamp(edge)}/.."}),
            (["site!=F"], {"time": window}),
        ]:
            query = Query.parse(terms, limit=None, **options)
            expected = reference_search(records, query)
            assert expected, (terms, options)
            assert sorted(ids_of(backend, query)) == sorted(expected), (terms, options)
        query = Query.parse(["site=E"], limit=None, time=window, bbox=f"-1,-1,{east!r},5")
        assert sorted(ids_of(backend, query)) == ["ends-on-start", "on-east", "on-time"]

    # -- sort, limit, cursor --------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("sort", "expected"),
        [
            ("ok", ["s2", "s1", "s3", "s4", "s6"]),  # JSON null sorts with the missing
            ("-ok", ["s1", "s2", "s3", "s4", "s6"]),
            ("ratio", ["s1", "s6", "s2", "s3", "s4"]),
            ("-ratio", ["s3", "s2", "s1", "s6", "s4"]),
            ("obs", ["s1", "s6", "s2", "s3", "s4"]),
            ("-obs", ["s2", "s6", "s1", "s3", "s4"]),
            ("inst.name", ["s1", "s2", "s3", "s4", "s6"]),
            ("-inst.name", ["s3", "s2", "s1", "s4", "s6"]),
            ("site", ["s1", "s6", "s2", "s3", "s4"]),
            ("title", ["s1", "s6", "s4", "s2", "s3"]),
            ("-title", ["s2", "s4", "s6", "s1", "s3"]),
            ("metadata.title", ["s4", "s1", "s2", "s3", "s6"]),
            ("created_at", ["s4", "s1", "s6", "s2", "s3"]),
            ("-created_at", ["s3", "s2", "s6", "s1", "s4"]),
            ("kind,-version", ["s2", "s1", "s6", "s3", "s4"]),
            ("-version,title", ["s3", "s2", "s1", "s6", "s4"]),
            ("never", ["s1", "s2", "s3", "s4", "s6"]),
            ("created_by", ["s1", "s2", "s3", "s4", "s6"]),
            ("-created_by", ["s2", "s1", "s3", "s4", "s6"]),
        ],
    )
    def test_sort(self, sample: CatalogBackend, sort: str, expected: list[str]) -> None:
        """Nulls last in both directions, ties in insertion order; text by code point,
        numbers before text (:meth:`test_sort_mixed_json_types`)."""
        assert search_ids(sample, sort=sort) == expected

    def test_sort_mixed_json_types(self, backend: CatalogBackend) -> None:
        """Values of every JSON type at one path sort in one order on every backend:
        numbers (booleans as 0 and 1) by value, then text by code point, lists and
        objects as their compact JSON text among the text, then JSON null and the
        missing; descending, the same reversed with nulls still last."""
        values: list[Any] = [
            2,
            1.5,
            True,
            "abc",
            "B",
            [1, 2],
            {"a": 1},
            None,
            "missing",
            "10",
            False,
            -3,
            1,
        ]
        backend.add(
            [
                Record(id=f"v{i:02d}", metadata={} if v == "missing" else {"v": v})
                for i, v in enumerate(values)
            ]
        )
        ascending = ["v11", "v10", "v02", "v12", "v01", "v00", "v09", "v04", "v05", "v03", "v06"]
        assert search_ids(backend, sort="v") == [*ascending, "v07", "v08"]
        descending = ["v06", "v03", "v05", "v04", "v09", "v00", "v01", "v02", "v12", "v10", "v11"]
        assert search_ids(backend, sort="-v") == [*descending, "v07", "v08"]
        for page_size in (1, 4):
            query = Query.parse(sort="-v")
            assert [i for page in all_pages(backend, query, page_size) for i in page] == [
                *descending,
                "v07",
                "v08",
            ]

    def test_text_sorts_by_code_point(self, backend: CatalogBackend) -> None:
        """Text orders by Unicode code point (UTF-8 byte order), whatever the locale:
        upper case before lower case, accented letters after z, astral characters last."""
        words = ["é", "b", "Z", "a", "ä", "ab", "😀", "B", "a b", "ａ", "A"]
        backend.add(
            [
                Record(id=f"w{i:02d}", title=word, metadata={"s": word}, tags=[f"t{i}"])
                for i, word in enumerate(words)
            ]
        )
        expected = [f"w{words.index(w):02d}" for w in sorted(words)]
        assert search_ids(backend, sort="title") == expected
        assert search_ids(backend, sort="s") == expected
        assert search_ids(backend, sort="-title") == expected[::-1]
        assert search_ids(backend, "title~[a-z]*") == [
            f"w{i:02d}" for i, w in enumerate(words) if "a" <= w[0] <= "z"
        ]

    def test_sort_through_a_list_finds_nothing(self, backend: CatalogBackend) -> None:
        """A sort path through a list (``l.x``, even ``l.0``) sorts like a missing value."""
        backend.add(
            [
                Record(id="list", metadata={"l": [{"x": 1}, {"x": 2}]}),
                Record(id="object", metadata={"l": {"x": 5, "0": 3}}),
                Record(id="none"),
            ]
        )
        assert search_ids(backend, sort="l.x") == ["object", "list", "none"]
        assert search_ids(backend, sort="-l.0") == ["object", "list", "none"]

    def test_limit(self, sample: CatalogBackend) -> None:
        page = sample.search(Query(limit=2))
        assert [r.id for r in page.records] == ["s1", "s2"]
        assert page.next_cursor is not None
        page = sample.search(Query(limit=5))
        assert len(page.records) == 5
        assert page.next_cursor is None
        assert sample.search(Query.parse(["site=XXX"], limit=3)).records == []

    @pytest.mark.parametrize(
        "sort", ["", "year", "-year", "title,-created_at", "-ratio,kind", "obs", "-vars"]
    )
    @pytest.mark.parametrize("page_size", [1, 2, 3, 5])
    def test_cursor_pagination(self, sample: CatalogBackend, sort: str, page_size: int) -> None:
        query = Query.parse(["status=[active,deprecated,planned,deleted]"], sort=sort)
        expected = ids_of(sample, query)
        pages = all_pages(sample, query, page_size)
        assert [i for page in pages for i in page] == expected
        assert all(pages), "no empty page"
        assert all(len(page) == page_size for page in pages[:-1])

    def test_pagination_survives_writes_elsewhere(self, sample: CatalogBackend) -> None:
        query = Query.parse(sort="ratio", limit=2)
        first = sample.search(query)
        sample.add(
            [Record(id="s0", metadata={"ratio": 0.1}), Record(id="s7", metadata={"ratio": 9})]
        )
        rest = all_pages(sample, query.model_copy(update={"cursor": first.next_cursor}), 2)
        seen = [r.id for r in first.records] + [i for page in rest for i in page]
        assert seen == ["s1", "s6", "s2", "s3", "s7", "s4"]

    @pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJ4IjogMX0=", ""])
    def test_bad_cursor(self, sample: CatalogBackend, cursor: str) -> None:
        if not cursor:
            return  # an empty cursor means "from the start"
        with pytest.raises(QueryError):
            sample.search(Query(cursor=cursor))

    def test_cursor_of_another_sort(self, sample: CatalogBackend) -> None:
        page = sample.search(Query.parse(sort="year,title", limit=1))
        assert page.next_cursor is not None
        with pytest.raises(QueryError):
            sample.search(Query.parse(sort="year", cursor=page.next_cursor))

    @pytest.mark.parametrize(
        "terms",
        [
            [],
            ["site=MHD"],
            ["site!=MHD"],
            ["status=deleted"],
            ["year>2000", "tag:missing"],
            ["never=1"],
        ],
    )
    def test_count(self, sample: CatalogBackend, terms: list[str]) -> None:
        query = Query.parse(terms, limit=1)
        assert sample.count(query) == len(search_ids(sample, *terms))

    @pytest.mark.parametrize(
        ("terms", "options"),
        [
            ([], {}),
            (["site=MHD"], {"sort": ["-year"]}),
            (["status=deleted"], {}),
            (["year>2000"], {"sort": ["year"], "limit": 2}),
            (["never=1"], {}),
        ],
    )
    def test_ids_are_what_search_finds(
        self, sample: CatalogBackend, terms: list[str], options: dict[str, Any]
    ) -> None:
        """``ids`` gives the ids of the records ``search`` gives, in its order and limit."""
        query = Query.parse(terms, **{"limit": None, **options})
        assert sample.ids(query) == [r.id for r in sample.search(query).records]

    # -- values the index must carry exactly ---------------------------------------------------------

    def test_64_bit_integers(self, backend: CatalogBackend) -> None:
        """Integers keep every digit, and leave no index rows behind when they change."""
        big, low, odd = 2**63 - 1, -(2**63), 2**53 + 1
        record = Record(
            id="big",
            metadata={"n": big, "m": low, "p": odd},
            version=2**62,
            artifacts=[Artifact(locator=LocalPath(path="huge.nc"), size_bytes=2**63 - 1)],
        )
        backend.add([record])
        assert backend.get("big") == record
        assert search_ids(backend, "n>1e18") == ["big"]
        assert search_ids(backend, "m<-1e18") == ["big"]
        assert search_ids(backend, "p>9e15") == ["big"]
        changed = record.model_copy(update={"metadata": {"n": 1}, "version": 2**62 + 1})
        backend.update(changed, expected_version=2**62)
        assert search_ids(backend, "n>1e18") == []
        assert search_ids(backend, "p:exists") == []
        backend.purge("big")
        backend.add([Record(id="after")])
        assert search_ids(backend, "n:exists") == []
        assert backend.fields() == []

    def test_long_text_values(self, backend: CatalogBackend) -> None:
        """Equality, patterns and sorting see the whole of a long string, not its first characters."""
        base = "x" * 300
        a, b = base + "A", base + "B"
        backend.add(
            [
                Record(id="a", metadata={"s": a}),
                Record(id="b", metadata={"s": b, "other": a}),
                Record(id="u", metadata={"s": "é" * 300}),
            ]
        )
        assert ids_of(backend, where(Condition(field="s", value=a))) == ["a"]
        assert ids_of(backend, where(Condition(field="s", op="ne", value=a))) == ["b", "u"]
        assert ids_of(backend, where(Condition(field="s", op="in", value=[a, "short"]))) == ["a"]
        assert ids_of(backend, where(Condition(field="s", value="é" * 300))) == ["u"]
        assert ids_of(backend, where(Condition(field="s", op="glob", value="*B"))) == ["b"]
        assert ids_of(backend, where(Condition(field="s", op="glob", value="x" * 300))) == []
        assert ids_of(backend, where(Condition(field="s", op="regex", value="A$"))) == ["a"]
        assert ids_of(backend, where(sort=[SortKey(field="s", descending=True)])) == ["u", "b", "a"]

    def test_date_equality_means_within_the_period(self, sample: CatalogBackend) -> None:
        """``d=P`` agrees with ``d>=P d<=P``, and with how ``created_at=P`` reads."""
        for period in ["2020-06", "2020", "2020-06-15", "2021-01-01T00:00:00Z"]:
            both = search_ids(sample, f"obs>={period}", f"obs<={period}")
            assert search_ids(sample, f"obs={period}") == both, period
            assert search_ids(sample, f"obs=[{period},none]") == both, period
            others = [i for i in search_ids(sample) if i not in both]
            assert search_ids(sample, f"obs!={period}") == others, period

    # -- against the reference ---------------------------------------------------------------------------

    @PROPERTY_SETTINGS
    @given(case=strategies.search_cases(), page_size=st.integers(1, 4))
    def test_search_agrees_with_reference(
        self, backend: CatalogBackend, case: tuple[list[Record], Query], page_size: int
    ) -> None:
        records, query = case
        clear_backend(backend)
        backend.add(records)
        expected = reference_search(records, query)
        got = ids_of(backend, query)
        assert sorted(got) == sorted(expected)
        assert len(set(got)) == len(got)
        assert order_problems(records, query, got) == []
        assert backend.count(query) == len(expected)
        pages = all_pages(backend, query, page_size)
        assert [i for page in pages for i in page] == got
