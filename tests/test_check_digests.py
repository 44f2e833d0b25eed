"""`check` proves the whole product: every chunk against the digest recorded while writing.

The damage here is done at the storage level, as a damaged disk or a careless
hand would: chunk files rewritten, swapped, deleted or truncated; Icechunk
chunks replaced through its store in a new commit; kerchunk references edited
in the JSON. Whatever the product and the damage, `check` fails and names the
variable and the chunk.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arcodex.convert import check, convert
from arcodex.errors import ConversionError
from arcodex.testing import S3_KEY_ID, S3_SECRET

xr = pytest.importorskip("xarray")
zarr = pytest.importorskip("zarr")
icechunk = pytest.importorskip("icechunk")
h5py = pytest.importorskip("h5py")
hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

TARGETS = {
    "zarr": ("zarr", "icechunk", ".zarr"),
    "icechunk": ("icechunk", "icechunk", ".icechunk"),
    "virtual-icechunk": ("virtual", "icechunk", ".icechunk"),
    "kerchunk": ("virtual", "kerchunk", ".json"),
}
DAMAGES = ("ulp", "swap", "delete", "truncate")


# -- small random archives -------------------------------------------------------------------


def write_sources(
    where: Path,
    *,
    files: int,
    steps: int,
    lat: int,
    lon: int,
    src_chunks: tuple[int, int, int],
    seed: int,
    empty_file: int | None = None,
) -> list[Path]:
    """``files`` NetCDF4 files of ``tas(time, lat, lon)`` float32 (zlib), ``steps`` each."""
    rng = np.random.default_rng(seed)
    where.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        values = rng.normal(280, 10, (steps, lat, lon)).astype("float32")
        if i == empty_file:
            values[:] = np.nan  # all fill (Zarr's NaN): chunks Zarr leaves unstored
        ds = xr.Dataset(
            {"tas": (("time", "lat", "lon"), values, {"units": "K"})},
            coords={
                "time": (
                    "time",
                    np.arange(i * steps, (i + 1) * steps, dtype="float64"),
                    {"units": "days since 2000-01-01", "calendar": "standard", "axis": "T"},
                ),
                "lat": ("lat", np.linspace(-60, 60, lat)),
                "lon": ("lon", np.linspace(0, 350, lon)),
            },
        )
        path = where / f"tas_{i:03d}.nc"
        ds.to_netcdf(
            path,
            engine="h5netcdf",
            unlimited_dims=["time"],
            encoding={
                "tas": {"chunksizes": src_chunks, "zlib": True, "_FillValue": None},
                "time": {"_FillValue": None},
                "lat": {"_FillValue": None},
                "lon": {"_FillValue": None},
            },
        )
        paths.append(path)
    return paths


def _convert(sources: Any, target: str, dest: Path | str, **kwargs: Any) -> Any:
    to, fmt, _ = TARGETS[target]
    kwargs.setdefault("cluster", "threads")
    kwargs.setdefault("workers", 2)
    return convert(sources, to=to, format=fmt, dest=dest, **kwargs)


# -- damage at the storage level ------------------------------------------------------------


def _group(path: Path, mode: str = "r") -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        return zarr.open_group(str(path), mode=mode, use_consolidated=False)


def _data_chunks(arr: Any) -> list[tuple[int, ...]]:
    """Chunk indices of ``arr`` that hold more than the fill value."""
    import itertools

    out = []
    for index in itertools.product(*(range(n) for n in arr.cdata_shape)):
        region = tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(index, arr.chunks, arr.shape, strict=True)
        )
        values = np.asarray(arr[region])
        fill = np.asarray(0 if arr.fill_value is None else arr.fill_value, dtype=values.dtype)
        if not np.array_equal(values, np.broadcast_to(fill, values.shape), equal_nan=True):
            out.append(index)
    return out


def _differing_pair(arr: Any, chunks: list[tuple[int, ...]], pick: Any) -> tuple[Any, Any]:
    def region(index: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(index, arr.chunks, arr.shape, strict=True)
        )

    a = pick(chunks)
    others = [
        b
        for b in chunks
        if b != a
        and (
            arr[region(a)].shape != arr[region(b)].shape or np.any(arr[region(a)] != arr[region(b)])
        )
    ]
    return a, pick(others)


def _ulp(values: np.ndarray, flat: int) -> np.ndarray:
    out = values.copy()
    where = np.unravel_index(flat % out.size, out.shape)
    out[where] = np.nextafter(out[where], np.inf, dtype=out.dtype)
    return out


def damage_zarr(path: Path, kind: str, pick: Any) -> tuple[int, ...]:
    arr = _group(path)["tas"]
    chunks = _data_chunks(arr)
    meta = arr.metadata

    def file_of(index: tuple[int, ...]) -> Path:
        return path / "tas" / meta.encode_chunk_key(index)

    a = pick(chunks)
    if kind == "ulp":
        region = tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(a, arr.chunks, arr.shape, strict=True)
        )
        rw = _group(path, "r+")["tas"]
        rw[region] = _ulp(np.asarray(rw[region]), pick(range(10**6)))
    elif kind == "swap":
        a, b = _differing_pair(arr, chunks, pick)
        fa, fb = file_of(a), file_of(b)
        tmp = fa.with_name(fa.name + ".tmp")
        os.replace(fa, tmp)
        os.replace(fb, fa)
        os.replace(tmp, fb)
    elif kind == "delete":
        file_of(a).unlink()
    else:
        raw = file_of(a).read_bytes()
        file_of(a).write_bytes(raw[: len(raw) // 2])
    return a


def _local_access(path: Path) -> Any:
    config = icechunk.Repository.fetch_config(icechunk.local_filesystem_storage(str(path)))
    if config is None or not config.virtual_chunk_containers:
        return None
    return icechunk.containers_credentials(
        dict.fromkeys(config.virtual_chunk_containers, icechunk.credentials.LocalFileSystemAccess)
    )


def damage_icechunk(path: Path, kind: str, pick: Any) -> tuple[int, ...]:
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(path)),
        authorize_virtual_chunk_access=_local_access(path),
    )
    arr = zarr.open_group(repo.readonly_session("main").store, mode="r")["tas"]
    chunks = _data_chunks(arr)
    session = repo.writable_session("main")
    store = session.store
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    proto = default_buffer_prototype()

    def key(index: tuple[int, ...]) -> str:
        return "tas/" + arr.metadata.encode_chunk_key(index)

    def get(index: tuple[int, ...]) -> bytes:
        return bytes(sync(store.get(key(index), proto)).to_bytes())

    def put(index: tuple[int, ...], raw: bytes) -> None:
        sync(store.set(key(index), proto.buffer.from_bytes(raw)))

    a = pick(chunks)
    if kind == "ulp":
        region = tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(a, arr.chunks, arr.shape, strict=True)
        )
        rw = zarr.open_group(store, mode="r+")["tas"]
        rw[region] = _ulp(np.asarray(rw[region]), pick(range(10**6)))
    elif kind == "swap":
        a, b = _differing_pair(arr, chunks, pick)
        ra, rb = get(a), get(b)
        put(a, rb)
        put(b, ra)
    elif kind == "delete":
        sync(store.delete(key(a)))
    else:
        raw = get(a)
        put(a, raw[: len(raw) // 2])
    session.commit(f"damage: {kind} {a}")
    return a


def damage_kerchunk(path: Path, kind: str, pick: Any) -> tuple[int, ...]:
    import numcodecs

    refs = json.loads(path.read_text())
    store = refs["refs"]
    meta = json.loads(store["tas/.zarray"])
    keys = sorted(
        k for k in store if k.startswith("tas/") and not k.rsplit("/", 1)[-1].startswith(".")
    )
    a = pick(keys)
    if kind == "ulp":
        url, offset, length = store[a]
        with open(url.removeprefix("file://"), "rb") as fh:
            fh.seek(offset)
            raw = fh.read(length)
        codecs = [numcodecs.get_codec(c) for c in (meta.get("filters") or [])]
        compressor = numcodecs.get_codec(meta["compressor"]) if meta.get("compressor") else None
        data = compressor.decode(raw) if compressor else raw
        for codec in reversed(codecs):
            data = codec.decode(data)
        values = np.frombuffer(bytes(data), dtype=meta["dtype"]).reshape(meta["chunks"])
        # HDF5 stores edge chunks whole: change a value inside the array, not the padding.
        index = [int(p) for p in a.removeprefix("tas/").split(".")]
        inside = tuple(
            slice(0, min(c, n - i * c))
            for i, c, n in zip(index, meta["chunks"], meta["shape"], strict=True)
        )
        changed_values = values.copy()
        changed_values[inside] = _ulp(values[inside], pick(range(10**6)))
        changed = changed_values.tobytes()
        for codec in codecs:
            changed = codec.encode(changed)
        if compressor:
            changed = compressor.encode(changed)
        store[a] = "base64:" + base64.b64encode(bytes(changed)).decode()
    elif kind == "swap":
        b = pick([k for k in keys if k != a])
        store[a], store[b] = store[b], store[a]
    elif kind == "delete":
        del store[a]
    else:
        url, offset, length = store[a]
        store[a] = [url, offset, length // 2]
    path.write_text(json.dumps(refs))
    return tuple(int(p) for p in a.removeprefix("tas/").split("."))


DAMAGE: dict[str, Callable[[Path, str, Any], tuple[int, ...]]] = {
    "zarr": damage_zarr,
    "icechunk": damage_icechunk,
    "virtual-icechunk": damage_icechunk,
    "kerchunk": damage_kerchunk,
}


# -- 1. the property: any single damage fails the check -----------------------------------------


@st.composite
def products(draw: Any) -> dict[str, Any]:
    steps = draw(st.integers(2, 4))
    lat = draw(st.integers(2, 6))
    lon = draw(st.integers(3, 7))
    return {
        "files": draw(st.integers(2, 3)),
        "steps": steps,
        "lat": lat,
        "lon": lon,
        "src_chunks": (
            draw(st.sampled_from([1, steps])),
            draw(st.integers(1, lat)),
            draw(st.integers(1, lon)),
        ),
        "chunks": {
            "time": draw(st.integers(1, 2 * steps)),
            "lat": draw(st.integers(1, lat)),
            "lon": draw(st.integers(1, lon)),
        },
        "seed": draw(st.integers(0, 2**16)),
    }


@pytest.fixture(scope="module")
def dask_client() -> Any:
    """One in-process cluster for every example (starting one per call costs more than a check)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_any_single_damage_fails_the_check(target: str, dask_client: Any) -> None:
    @hypothesis.settings(
        max_examples=10,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(spec=products(), damage=st.sampled_from(DAMAGES), data=st.data())
    def run(spec: dict[str, Any], damage: str, data: Any) -> None:
        # Not popped: hypothesis prints the drawn spec of a failing example.
        chunks = spec["chunks"]
        with tempfile.TemporaryDirectory(prefix="arcodex-prop-") as tmp:
            files = write_sources(
                Path(tmp) / "src", **{k: v for k, v in spec.items() if k != "chunks"}
            )
            dest = Path(tmp) / f"out{TARGETS[target][2]}"
            kwargs = {} if target in ("virtual-icechunk", "kerchunk") else {"chunks": chunks}
            result = _convert([str(f) for f in files], target, dest, cluster=dask_client, **kwargs)
            assert result.status == "pass", result.report.reasons

            def pick(options: Any) -> Any:
                return data.draw(st.sampled_from(list(options)))

            index = DAMAGE[target](dest, damage, pick)
            report = check(dest, cluster=dask_client)
            assert report.status == "fail", (damage, index, report.to_dict())
            named = f"({', '.join(str(i) for i in index)})"
            assert any("tas" in r for r in report.reasons), report.reasons
            if damage != "swap":  # a swap names both chunks; the first drawn may be either
                assert any(named in r or "tas chunks at" in r for r in report.reasons), (
                    named,
                    report.reasons,
                )

    run()


# -- 2. empty, missing and extra chunks -------------------------------------------------------


def test_missing_chunk_is_told_from_an_empty_one(tmp_path: Path) -> None:
    files = write_sources(
        tmp_path / "src", files=3, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=1, empty_file=1
    )
    dest = tmp_path / "out.zarr"
    result = _convert([str(f) for f in files], "zarr", dest, chunks={"time": 2})
    assert result.status == "pass", result.report.reasons
    assert result.report.checked["chunks_empty"] == 1
    # The empty chunk was never stored, and the check knows it should not be.
    assert not (dest / "tas" / "c" / "1" / "0" / "0").exists()
    assert check(dest, cluster="threads").status == "pass"
    (dest / "tas" / "c" / "2" / "0" / "0").unlink()
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any("tas chunk (2, 0, 0) missing" in r for r in report.reasons), report.reasons
    assert not any("(1, 0, 0)" in r for r in report.reasons), report.reasons


def test_extra_chunk_fails(tmp_path: Path) -> None:
    files = write_sources(
        tmp_path / "src", files=2, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=2
    )
    dest = tmp_path / "out.zarr"
    assert _convert([str(f) for f in files], "zarr", dest, chunks={"time": 2}).status == "pass"
    shutil.copy(dest / "tas" / "c" / "0" / "0" / "0", dest / "tas" / "c" / "0" / "0" / "7")
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any("never written: c/0/0/7" in r for r in report.reasons), report.reasons


def test_zarr_v2_swapped_chunk_files_fail(tmp_path: Path) -> None:
    files = write_sources(
        tmp_path / "src", files=2, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=3
    )
    dest = tmp_path / "out.zarr"
    result = _convert([str(f) for f in files], "zarr", dest, chunks={"time": 1}, zarr_format=2)
    assert result.status == "pass", result.report.reasons
    a, b = dest / "tas" / "0.0.0", dest / "tas" / "3.0.0"
    ra, rb = a.read_bytes(), b.read_bytes()
    a.write_bytes(rb)
    b.write_bytes(ra)
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any("tas chunk (0, 0, 0) differs" in r for r in report.reasons), report.reasons
    assert any("tas chunk (3, 0, 0) differs" in r for r in report.reasons), report.reasons


# -- 3. sources: fingerprints, corrupt chunks ------------------------------------------------------


def _corrupt_chunk(path: Path, var: str = "tas", chunk: int = 0) -> None:
    """Overwrite a few bytes in the middle of one compressed HDF5 chunk, keeping the mtime."""
    stat = path.stat()
    with h5py.File(path, "r") as f:
        info = f[var].id.get_chunk_info(chunk)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xde\xad\xbe\xef" * 2)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_changed_and_missing_sources_fail_by_name(tmp_path: Path) -> None:
    files = write_sources(
        tmp_path / "src", files=3, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=4
    )
    dest = tmp_path / "out.zarr"
    assert _convert([str(f) for f in files], "zarr", dest).status == "pass"
    os.utime(files[1], ns=(1, 1))
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any("changed since" in r and files[1].name in r for r in report.reasons)
    files[2].unlink()
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any("missing" in r and files[2].name in r for r in report.reasons), report.reasons
    # The chunks are still verified without the sources.
    assert report.checked["chunks"] > 0


@pytest.mark.parametrize("target", ["zarr", "virtual-icechunk", "kerchunk"])
def test_corrupt_source_chunk_is_a_clear_error(tmp_path: Path, target: str) -> None:
    files = write_sources(
        tmp_path / "src", files=2, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=5
    )
    _corrupt_chunk(files[1])
    dest = tmp_path / f"out{TARGETS[target][2]}"
    with pytest.raises(ConversionError, match=f"cannot read tas.*{files[1].name}.*damaged"):
        _convert([str(f) for f in files], target, dest)


@pytest.mark.parametrize("target", ["virtual-icechunk", "kerchunk"])
def test_virtual_product_of_a_source_corrupted_later_fails_its_check(
    tmp_path: Path, target: str
) -> None:
    files = write_sources(
        tmp_path / "src", files=2, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=6
    )
    dest = tmp_path / f"out{TARGETS[target][2]}"
    assert _convert([str(f) for f in files], target, dest).status == "pass"
    _corrupt_chunk(files[1])  # the fingerprint (size, mtime) stays: only the chunks tell
    report = check(dest, cluster="threads", samples=0)
    assert report.status == "fail"
    assert any("tas" in r and ("cannot be read" in r or "differs" in r) for r in report.reasons)


# -- 4. the sample, --full, the CLI --------------------------------------------------------------


def test_sample_is_drawn_afresh_and_reproducible(tmp_path: Path) -> None:
    files = write_sources(
        tmp_path / "src", files=6, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=7
    )
    dest = tmp_path / "out.zarr"
    assert _convert([str(f) for f in files], "zarr", dest).status == "pass"
    seeds = {check(dest, cluster="threads", samples=1).checked["seed"] for _ in range(3)}
    assert len(seeds) == 3
    a = check(dest, cluster="threads", samples=1, seed=11).checked
    b = check(dest, cluster="threads", samples=1, seed=11).checked
    assert a["seed"] == 11 and a["sources_sampled"] == b["sources_sampled"]
    full = check(dest, cluster="threads", full=True)
    assert full.status == "pass" and full.checked["values"] == "all"


def test_full_check_finds_a_value_the_digests_were_recorded_over(tmp_path: Path) -> None:
    """`--full` compares with the sources, so it also catches a product whose digests
    were rewritten to match a change (what the digest check alone cannot)."""
    files = write_sources(
        tmp_path / "src", files=4, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=8
    )
    dest = tmp_path / "out.zarr"
    assert _convert([str(f) for f in files], "zarr", dest).status == "pass"
    arr = _group(dest, "r+")["tas"]
    values = np.asarray(arr[5])
    arr[5] = _ulp(values, 3)
    from arcodex.convert import _digest

    provenance = json.loads(_group(dest).attrs["arcodex_provenance"])
    digests = _digest.Digests.from_dict(provenance["digests"])
    g = _group(dest)
    digests.add(
        _digest.chunk_digests("tas", tuple(slice(0, n) for n in arr.shape), arr[:], g["tas"])
    )
    provenance["digests"] = digests.to_dict()
    rw = _group(dest, "r+")
    rw.attrs["arcodex_provenance"] = json.dumps(provenance)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(str(dest))
    assert check(dest, cluster="threads", samples=0, seed=1).status in ("pass", "warn")
    report = check(dest, cluster="threads", full=True)
    assert report.status == "fail"
    assert any("tas[" in r and "differs from its sources in 1 values" in r for r in report.reasons)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    code = "import sys; from arcodex.cli import main; sys.argv[0] = 'arcodex'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_check_takes_a_shell_expanded_source_list(tmp_path: Path) -> None:
    files = write_sources(
        tmp_path / "src", files=3, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=9
    )
    dest = tmp_path / "out.zarr"
    assert _convert([str(f) for f in files], "zarr", dest).status == "pass"
    out = _cli(
        "check",
        str(dest),
        "--sources",
        *[str(f) for f in files],
        "--seed",
        "3",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "pass"
    assert report["checked"]["seed"] == 3
    assert report["checked"]["chunks"] > 0
    # Fewer sources than the product holds: the coverage fails, by the CLI's exit code.
    out = _cli("check", str(dest), "--sources", str(files[0]), str(files[1]), cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    out = _cli("check", str(dest), str(files[0]), cwd=tmp_path)
    assert out.returncode != 0 and "--sources" in out.stdout + out.stderr


# -- 5. on S3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["zarr", "icechunk"])
def test_damaged_chunk_on_s3_fails(
    tmp_path: Path, s3_endpoint: str, s3_env: None, target: str
) -> None:
    import boto3

    bucket = f"arcodex-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    files = write_sources(
        tmp_path / "src", files=2, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=10
    )
    options = {"key": S3_KEY_ID, "secret": S3_SECRET, "endpoint_url": s3_endpoint}
    dest = f"s3://{bucket}/out{TARGETS[target][2]}"
    result = _convert(
        [str(f) for f in files], target, dest, dest_options=options, chunks={"time": 2}
    )
    assert result.status == "pass", result.report.reasons
    if target == "zarr":
        client.delete_object(Bucket=bucket, Key="out.zarr/tas/c/1/0/0")
    else:
        from arcodex.convert import Product

        product = Product.detect(dest, options)
        session = product.repository().writable_session("main")
        from zarr.core.sync import sync

        sync(session.store.delete("tas/c/1/0/0"))
        session.commit("damage")
    report = check(dest, dest_options=options, cluster="threads")
    assert report.status == "fail"
    assert any("tas chunk (1, 0, 0) missing" in r for r in report.reasons), report.reasons


def test_edge_chunk_cut_short_in_its_padding_fails(tmp_path: Path) -> None:
    """Blosc reads a chunk cut short in the padding past the array's edge without an error, and
    every value stays the same: only the chunk's recorded size tells."""
    files = write_sources(
        tmp_path / "src", files=2, steps=4, lat=3, lon=5, src_chunks=(1, 2, 3), seed=2816
    )
    dest = tmp_path / "out.zarr"
    chunks = {"time": 7, "lat": 3, "lon": 1}
    assert _convert([str(f) for f in files], "zarr", dest, chunks=chunks).status == "pass"
    edge = dest / "tas" / "c" / "1" / "0" / "0"
    raw = edge.read_bytes()
    edge.write_bytes(raw[: len(raw) // 2])
    assert np.isfinite(np.asarray(_group(dest)["tas"][7:8])).all()  # still reads
    report = check(dest, cluster="threads")
    assert report.status == "fail"
    assert any(
        f"tas chunk (1, 0, 0) is {len(raw) // 2} bytes where {len(raw)} were written" in r
        for r in report.reasons
    ), report.reasons


# kerchunk/fsspec ask pandas for the fastparquet engine, which pandas 3 deprecates.
@pytest.mark.filterwarnings("ignore:The 'fastparquet' engine is deprecated")
def test_kerchunk_parquet_chunks_the_listing_leaves_out_are_checked(tmp_path: Path) -> None:
    """A Parquet reference store does not list inlined chunks (the coordinates): they are
    present, not missing."""
    files = write_sources(
        tmp_path / "src", files=2, steps=2, lat=3, lon=4, src_chunks=(2, 3, 4), seed=5
    )
    dest = tmp_path / "out.parq"
    result = convert(
        [str(f) for f in files],
        to="virtual",
        format="kerchunk-parquet",
        dest=dest,
        cluster="threads",
    )
    assert result.status == "pass", result.report.reasons
    report = check(dest, cluster="threads")
    assert report.status == "pass", report.reasons
    checked = report.checked
    assert checked["chunks_stored"] == checked["chunks"] - checked["chunks_empty"] > 0
