"""A catalog of remote files from a static manifest, downloaded only when asked for.

Run from the repository root:
``.venv/bin/python examples/remote-frontend/remote_catalog.py``.
Everything is written under ``examples/remote-frontend/output/`` (ignored by git);
the "remote" server is a loopback ``http.server`` this script starts and stops.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from arcodex.catalog import Catalog

OUT = Path(__file__).resolve().parent / "output"
shutil.rmtree(OUT, ignore_errors=True)
(OUT / "remote").mkdir(parents=True)
(OUT / "downloads").mkdir()

# Three monthly NetCDF files on the "remote" server.
for month in ("2022-01", "2022-02", "2022-03"):
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), 280 + np.random.default_rng(0).random((3, 2, 2)))},
        coords={
            "time": pd.date_range(month, periods=3, freq="D"),
            "lat": [10.0, 11.0],
            "lon": [20.0, 21.0],
        },
    )
    ds["tas"].attrs["units"] = "K"
    ds.to_netcdf(OUT / "remote" / f"tas_{month}.nc")


GETS: list[str] = []  # every path the server was asked for


class Handler(SimpleHTTPRequestHandler):
    """Serves the remote directory, counting GETs and keeping quiet."""

    def do_GET(self) -> None:
        GETS.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=OUT / "remote"))
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"

# The manifest a data provider publishes: where each file is and what it holds.
# Here it is written beside the files; a real one is fetched once, or shipped.
manifest = [
    {
        "url": f"{base}/{p.name}",
        "variable": "tas",
        "month": p.stem.removeprefix("tas_"),
        "size_bytes": p.stat().st_size,
    }
    for p in sorted((OUT / "remote").glob("*.nc"))
]
(OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))

# Register every URL as an external record: only the manifest is read, and the
# metadata comes from it. Nothing is downloaded.
cat = Catalog.create(OUT / "catalog")
for entry in json.loads((OUT / "manifest.json").read_text()):
    url = entry.pop("url")
    rec = cat.add_external(
        url, title=Path(url).name, metadata=entry, media_type="application/x-netcdf"
    )
    print(f"registered {rec.title} as {rec.id} ({rec.kind})")
print("requests to the server so far:", len(GETS))

# Searches work on the manifest's metadata alone.
page = cat.search("month>=2022-02")
print("search month>=2022-02:", [r.title for r in page.records])


def fetch(record_id: str) -> str:
    """Download an external record's file into the catalog, once; the local record's id."""
    record = cat.get(record_id)
    if "local_copy" in record.metadata:  # fetched before: nothing to do
        return str(record.metadata["local_copy"])
    url = cat.locate(record.artifacts[0])
    target = OUT / "downloads" / record.title
    with urllib.request.urlopen(url, timeout=10) as answer:
        target.write_bytes(answer.read())
    # Added as any file: copied into managed storage, its NetCDF metadata read;
    # the external record then points at its local copy.
    local = cat.add_file(target, metadata={"fetched_from": record.id}, tags=["fetched"])
    cat.update(record.id, set={"local_copy": local.id})
    return local.id


# On demand: the one file someone wants.
wanted = page.records[-1]
local_id = fetch(wanted.id)
again = fetch(wanted.id)
print(f"fetched {wanted.title} as {local_id}; asked again: same record={again == local_id}")
print("requests to the server so far:", len(GETS), GETS)
local = cat.get(local_id)
print(
    "local copy:",
    local.kind,
    f"variables={sorted(local.metadata['netcdf']['variables'])}",
    f"time={local.metadata['start_datetime']} .. {local.metadata['end_datetime']}",
)
with xr.open_dataset(cat.path(local_id)) as ds:
    print(f"tas mean: {float(ds.tas.mean()):.2f} K")

server.shutdown()
cat.close()
