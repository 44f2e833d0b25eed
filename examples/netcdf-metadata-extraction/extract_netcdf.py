"""Generate two small NetCDF files, add them, and search by what they contain.

Run from the repository root:
``.venv/bin/python examples/netcdf-metadata-extraction/extract_netcdf.py``.
Everything is written under ``examples/netcdf-metadata-extraction/output/`` (ignored by git).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from arcodex.catalog import Catalog

OUT = Path(__file__).resolve().parent / "output"
shutil.rmtree(OUT, ignore_errors=True)
(OUT / "data").mkdir(parents=True)


def make_file(name: str, var: str, units: str, lon: tuple, lat: tuple, start: str) -> Path:
    """A 4x3 grid over ten days, with CF attributes the extractor reads."""
    ds = xr.Dataset(
        {var: (("time", "lat", "lon"), np.random.default_rng(0).random((10, 3, 4)))},
        coords={
            "time": pd.date_range(start, periods=10, freq="D"),
            "lat": np.linspace(*lat, 3),
            "lon": np.linspace(*lon, 4),
        },
        attrs={"title": name, "institution": "Example Ocean Centre"},
    )
    ds[var].attrs["units"] = units
    path = OUT / "data" / f"{name}.nc"
    ds.to_netcdf(path)
    return path


# Sea surface temperature over the North Atlantic in January 2020, and
# salinity off Tasmania in July 2021: different variables, places and times.
files = [
    make_file("sst_natl", "sst", "degC", lon=(-40, -10), lat=(40, 60), start="2020-01-01"),
    make_file("sal_tas", "so", "1e-3", lon=(140, 150), lat=(-45, -40), start="2021-07-01"),
]

cat = Catalog.create(OUT / "catalog")
for path in files:
    rec = cat.add_file(path)  # no metadata given: it is all read from the file
    print(f"added {path.name} as {rec.id} ({rec.kind})")

    # The NetCDF extractor keeps dims, variables (with their attributes) and global
    # attributes under "netcdf"; the extent goes to bbox/start_datetime/end_datetime.
    nc = rec.metadata["netcdf"]
    for name, var in nc["variables"].items():
        if name not in nc["coords"]:
            print(f"  variable {name}: dims={var['dims']} units={var.get('units')}")
    print(f"  bbox={rec.metadata['bbox']}")
    print(f"  time={rec.metadata['start_datetime']} .. {rec.metadata['end_datetime']}")


def show(query: str = "", **extent: str) -> None:
    page = cat.search(query, **extent)
    label = " ".join([query] + [f"--{k} {v}" for k, v in extent.items()]).strip()
    print(f"search {label}:", [r.title for r in page.records])


# Every extracted value is indexed, so queries reach into the file's own description.
show("netcdf.variables.sst:exists")
show('netcdf.variables.so.units="1e-3"')  # quoted: as text, not the number 0.001
show("netcdf.attrs.institution~Example*")
# bbox (W,S,E,N) intersects each record's extent; time overlaps its period.
show(bbox="-30,45,-20,55")
show(time="2021-07")
show(bbox="100,-50,160,-30", time="2020")  # the right place, the wrong year
cat.close()
