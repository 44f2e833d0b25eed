"""Catalog datasets by their DOIs, and materialise one later through its resolver.

Run from the repository root:
``.venv/bin/python examples/persistent-ids/persistent_ids.py``.
Everything is written under ``examples/persistent-ids/output/`` (ignored by git);
the DOI resolver is a loopback ``http.server`` this script starts and stops.
"""

from __future__ import annotations

import re
import shutil
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import xarray as xr

from arcodex.catalog import Catalog, HookContext, HookError, HookResult
from arcodex.model import ExternalUri

OUT = Path(__file__).resolve().parent / "output"
shutil.rmtree(OUT, ignore_errors=True)
(OUT / "repository").mkdir(parents=True)
(OUT / "downloads").mkdir()

# The data behind two DOIs, as a repository (Zenodo, PANGAEA …) would hold it.
FILES = {"10.5555/buoy.7": "buoy7.nc", "10.5555/buoy.8": "buoy8.nc"}
for doi, name in FILES.items():
    ds = xr.Dataset({"sst": ("time", np.linspace(10, 12, 5), {"units": "degC"})})
    ds.attrs["title"] = f"buoy data, doi:{doi}"
    ds.to_netcdf(OUT / "repository" / name)


class Resolver(BaseHTTPRequestHandler):
    """Plays doi.org: /DOI redirects to the file; the repository serves /files/NAME."""

    def do_GET(self) -> None:
        doi, name = self.path.lstrip("/"), self.path.removeprefix("/files/")
        if doi in FILES:
            self.send_response(302)
            self.send_header("Location", f"/files/{FILES[doi]}")
            self.end_headers()
        elif name in FILES.values():
            data = (OUT / "repository" / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Resolver)
threading.Thread(target=server.serve_forever, daemon=True).start()
RESOLVER = f"http://127.0.0.1:{server.server_port}/"  # https://doi.org/ in real life

DOI = re.compile(r"^10\.\d{4,9}/\S+$")


def pid_hook(ctx: HookContext) -> HookResult | None:
    """Describe a record registered by DOI, and mark it as not materialised yet."""
    record = ctx.record
    if record is None or "pid" in record.metadata or not record.artifacts:
        return None  # not a new PID record (an update, or a file)
    locator = record.artifacts[0].locator
    if not isinstance(locator, ExternalUri) or not locator.uri.startswith("doi:"):
        return None
    doi = locator.uri.removeprefix("doi:")
    if not DOI.match(doi):
        raise ValueError(f"{doi!r} is not a DOI (10.PREFIX/SUFFIX)")
    return HookResult(metadata={"pid": {"scheme": "doi", "value": doi}, "materialised": False})


cat = Catalog.create(OUT / "catalog")
# Required: a hook that raises fails the add, which is rolled back. It runs just
# before each record is written, in every add and update of this catalog.
cat.hooks.register("before_record_commit", pid_hook, name="pid", required=True)

for doi in FILES:
    # As stored: with what the commit hook added.
    rec = cat.add_external(f"doi:{doi}", title=doi, tags=["buoy"])
    print(f"registered doi:{doi} as {rec.id}: pid={rec.metadata['pid']}")
try:
    cat.add_external("doi:buoy.9")
except HookError as exc:
    print("doi:buoy.9 refused:", str(exc))
print("records:", cat.count())
print("not materialised:", [r.title for r in cat.search("materialised=false").records])


def materialise(record_id: str) -> str:
    """Resolve the record's DOI, download its data into the catalog; the local record."""
    record = cat.get(record_id)
    if record.metadata.get("materialised"):
        return str(record.metadata["local_copy"])
    doi = record.metadata["pid"]["value"]
    with urllib.request.urlopen(RESOLVER + doi, timeout=10) as answer:  # follows the redirect
        target = OUT / "downloads" / Path(answer.url).name
        target.write_bytes(answer.read())
    local = cat.add_file(target, metadata={"materialised_from": f"doi:{doi}"})
    cat.update(record.id, set={"materialised": True, "local_copy": local.id})
    return local.id


# Later, when someone needs buoy 8's data:
(wanted,) = cat.search("pid.value=10.5555/buoy.8").records
local_id = materialise(wanted.id)
print(f"materialised doi:{wanted.metadata['pid']['value']} as {local_id}")
print("again:", materialise(wanted.id) == local_id)
print("not materialised:", [r.title for r in cat.search("materialised=false").records])
local = cat.get(local_id)
print(f"local copy: {local.kind} {local.title!r} from {local.metadata['materialised_from']}")

server.shutdown()
cat.close()
