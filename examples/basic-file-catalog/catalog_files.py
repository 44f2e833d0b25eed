"""Catalog a few generated files, find them again and change one record.

Run from the repository root: ``.venv/bin/python examples/basic-file-catalog/catalog_files.py``.
Everything is written under ``examples/basic-file-catalog/output/`` (ignored by git).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from arcodex.catalog import Catalog
from arcodex.errors import ConflictError

OUT = Path(__file__).resolve().parent / "output"

# Start from nothing on every run, so the example prints the same thing each time.
shutil.rmtree(OUT, ignore_errors=True)
data = OUT / "data"
data.mkdir(parents=True)

# Three small observation files from two sites: the kind of thing a lab keeps.
for site, year in [("MHD", 2020), ("MHD", 2021), ("TAC", 2021)]:
    (data / f"ch4_{site}_{year}.csv").write_text(
        f"site,time,ch4\n{site},{year}-01-01,1900\n{site},{year}-06-01,1910\n"
    )

# A catalog is a directory: settings, a SQLite database, and a store for managed copies.
cat = Catalog.create(OUT / "catalog")

# add_file copies each file into the catalog's store (hashing it on the way) and keeps
# the free metadata dict we give it; every key becomes searchable.
ids = {}
for path in sorted(data.glob("*.csv")):
    _, site, year = path.stem.split("_")
    rec = cat.add_file(path, metadata={"site": site, "year": int(year)}, tags=["ch4"])
    ids[path.name] = rec.id
    print(f"added {path.name} as {rec.id}")

# Queries are terms over metadata and record fields; results come back as a page.
page = cat.search("site=MHD year>=2021")
print(
    "search site=MHD year>=2021:",
    [r.metadata["site"] + str(r.metadata["year"]) for r in page.records],
)
page = cat.search("tag=ch4")
print("search tag=ch4:", len(page.records), "records")

# The same content again is refused (by sha256, whatever the file is called).
try:
    cat.add_file(data / "ch4_TAC_2021.csv")
except ConflictError:
    print("adding ch4_TAC_2021.csv again: refused as a duplicate")

# Show one record: what it says about itself and where its managed copy lives.
rid = ids["ch4_TAC_2021.csv"]
rec = cat.get(rid)
print(f"show {rid}: title={rec.title!r} version={rec.version} metadata={rec.metadata}")
print("stored at", Path(cat.path(rid)).relative_to(OUT))

# An update names the version it expects: a concurrent change would make it fail
# with a ConflictError instead of silently overwriting someone else's edit.
old = rec.version
rec = cat.update(rid, set={"quality": "good"}, add_tags=["reviewed"], expected_version=old)
print(f"updated {rid}: version={rec.version} quality={rec.metadata['quality']} tags={rec.tags}")
try:
    cat.update(rid, set={"quality": "bad"}, expected_version=old)  # a stale edit
except ConflictError:
    print(f"update expecting version {old}: refused, the record is at version {rec.version}")
print("search quality=good:", [r.id for r in cat.search("quality=good").records])
cat.close()
