"""Turn a raw NetCDF file with messy names and units into a standardised product.

Run from the repository root:
``.venv/bin/python examples/format-preparation/prepare_format.py``.
Everything is written under ``examples/format-preparation/output/`` (ignored by git).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from arcodex.catalog import Catalog
from arcodex.convert import convert
from arcodex.errors import ValidationError

OUT = Path(__file__).resolve().parent / "output"
shutil.rmtree(OUT, ignore_errors=True)
(OUT / "raw").mkdir(parents=True)
(OUT / "work").mkdir()

# A buoy file as it might arrive: upper-case names, temperature in kelvin,
# salinity in "PSU", and no CF standard names.
rng = np.random.default_rng(0)
raw = xr.Dataset(
    {
        "SST": (("TIME", "LAT", "LON"), 273.15 + 10 + 5 * rng.random((6, 3, 4)), {"units": "K"}),
        "Sal": (("TIME", "LAT", "LON"), 34 + rng.random((6, 3, 4)), {"units": "PSU"}),
    },
    coords={
        "TIME": pd.date_range("2021-03-01", periods=6, freq="D"),
        "LAT": np.linspace(50, 52, 3),
        "LON": np.linspace(-20, -17, 4),
    },
    attrs={"Title": "buoy 7 raw", "Institution": "Example Ocean Centre"},
)
raw_path = OUT / "raw" / "BUOY7_2021-03.nc"
raw.to_netcdf(raw_path)

cat = Catalog.create(OUT / "catalog")
source = cat.add_file(raw_path, tags=["raw"])  # the source, kept by the catalog
print(f"source {source.title} as {source.id}")

# What a standardised product must look like, as a JSON Schema kept with the
# catalog. A schema checks a record's metadata: here the variables a conversion
# reads from the product (names, units) and the extent.
cat.register_schema(
    "ocean-std@1",
    {
        "type": "object",
        "required": ["variables", "bbox", "start_datetime"],
        "properties": {
            "variables": {
                "type": "object",
                "required": ["sst", "so", "lat", "lon", "time"],
                "properties": {
                    "sst": {"properties": {"units": {"const": "degC"}}, "required": ["units"]},
                    "so": {"properties": {"units": {"const": "1e-3"}}, "required": ["units"]},
                },
            }
        },
    },
)
print("schemas:", cat.list_schemas())

# Converting the file as it came gives a product the schema refuses: under the
# strict policy, naming the schema is refused and the record stays as it was.
# (cluster="threads": data this small needs no worker processes.)
naive = convert(
    raw_path,
    to="zarr",
    dest=OUT / "work" / "naive.zarr",
    catalog=cat,
    concat_dim="TIME",
    cluster="threads",
)
try:
    cat.update(naive.record.id, schema="ocean-std@1", schema_policy="strict")
except ValidationError as exc:
    print("naive product refused:", str(exc).splitlines()[0])
cat.delete(naive.record.id, purge=True)  # not worth keeping

# Standardise from the catalog's own copy of the source: CF names, SI-style
# units, standard names; then write the NetCDF the conversion reads.
with xr.open_dataset(cat.path(source.id)) as ds:
    std = ds.rename({"SST": "sst", "Sal": "so", "TIME": "time", "LAT": "lat", "LON": "lon"})
    std["sst"] = std["sst"] - 273.15
    std["sst"].attrs = {"units": "degC", "standard_name": "sea_surface_temperature"}
    std["so"].attrs = {"units": "1e-3", "standard_name": "sea_water_salinity"}
    std.attrs = {"title": "buoy 7, standardised", "institution": ds.attrs["Institution"]}
    std_path = OUT / "work" / "buoy7_2021-03_std.nc"
    std.load().to_netcdf(std_path)

# The conversion registers the product. Saying where its input came from links
# it back to the source record; naming the schema (strict) proves it standard.
done = convert(std_path, to="zarr", catalog=cat, cluster="threads", title="buoy7-std")
product = cat.update(
    done.record.id,
    set={"prepared_from": source.id},
    add_tags=["standardised"],
    schema="ocean-std@1",
    schema_policy="strict",
)
print(
    f"product {product.title} as {product.id}: schema {product.schema_name}@{product.schema_version}"
)
(result,) = cat.validate(product.id)
print(f"validate {product.title}: valid={result.valid}")
for name in ("sst", "so"):
    print(f"  variable {name}: units={product.metadata['variables'][name]['units']}")

# Lineage: the product names the operation that made it; the operation names
# its inputs; the metadata names the source record those inputs came from.
(link,) = product.lineage
(op,) = [o for o in cat.operations(limit=50) if o.id == link.operation_id]
print(f"lineage: {link.relation} operation {op.action} ({op.status})")
print("  inputs:", [Path(i).name for i in op.inputs])
print("  prepared from:", cat.get(product.metadata["prepared_from"]).title)

with xr.open_zarr(cat.path(product.id)) as ds:
    print(f"sst in the product: {float(ds.sst.min()):.1f} .. {float(ds.sst.max()):.1f} degC")
cat.close()
