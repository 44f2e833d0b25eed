"""HDF5 chunks decoded by arcodex (libdeflate + shuffle) read exactly what h5py reads.

Each dataset is written by h5py with a different layout or filter pipeline;
the reader must return the bytes h5py returns for any selection, and leave
to h5py what it cannot decode itself (other filters, chunks never written,
a damaged chunk), so that a product stays bit-identical to its sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arcodex.convert._hdf5 import ChunkReader, fast_inflate
from arcodex.convert._sources import SourceRef, open_raw
from arcodex.errors import ConversionError

h5py = pytest.importorskip("h5py")
pytestmark = pytest.mark.skipif(not fast_inflate(), reason="imagecodecs' libdeflate is missing")


@pytest.fixture
def h5file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    values = rng.standard_normal((7, 13, 17)).astype("f4")
    path = tmp_path / "layouts.h5"
    with h5py.File(path, "w") as f:
        kw = {"compression": "gzip", "compression_opts": 1}
        f.create_dataset("shuffled", data=values, chunks=(2, 5, 6), shuffle=True, **kw)
        f.create_dataset("big", data=values.astype(">f8"), chunks=(3, 4, 17), shuffle=True, **kw)
        f.create_dataset("deflated", data=(values * 100).astype("i2"), chunks=(1, 13, 17), **kw)
        f.create_dataset(
            "bytes", data=(values * 10).astype("u1"), chunks=(2, 5, 6), shuffle=True, **kw
        )
        f.create_dataset("checksummed", data=values, chunks=(2, 5, 6), fletcher32=True, **kw)
        f.create_dataset("plain", data=values, chunks=(2, 5, 6))
        sparse = f.create_dataset(
            "sparse", shape=(6, 10), dtype="f4", chunks=(2, 5), fillvalue=-1, shuffle=True, **kw
        )
        sparse[0:2, 0:5] = 3.0
    return path


def _selections(
    shape: tuple[int, ...], rng: np.random.Generator, n: int
) -> list[tuple[slice, ...]]:
    out = [tuple(slice(0, s) for s in shape)]
    for _ in range(n):
        sel = []
        for size in shape:
            lo = int(rng.integers(0, size))
            sel.append(slice(lo, int(rng.integers(lo, size + 1))))
        out.append(tuple(sel))
    return out


@pytest.mark.parametrize("name", ["shuffled", "big", "deflated", "bytes", "sparse"])
def test_reads_what_h5py_reads(h5file: Path, name: str) -> None:
    rng = np.random.default_rng(1)
    with h5py.File(h5file, "r") as f:
        dset = f[name]
        reader = ChunkReader.of(dset)
        assert reader is not None
        for sel in _selections(dset.shape, rng, 60):
            want = np.asarray(dset[sel])
            got = reader.read(sel)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes(), sel
            out = np.full(want.shape, 99, dtype=want.dtype)
            assert reader.read(sel, out) is out
            assert out.tobytes() == want.tobytes(), sel


@pytest.mark.parametrize("name", ["checksummed", "plain"])
def test_other_pipelines_are_left_to_h5py(h5file: Path, name: str) -> None:
    with h5py.File(h5file, "r") as f:
        assert ChunkReader.of(f[name]) is None


def test_source_reads_into_a_block(h5file: Path) -> None:
    """``RawFile.read`` fills the caller's array, on both paths (decoded here, or by h5py)."""
    raw = open_raw(SourceRef(str(h5file)))
    with h5py.File(h5file, "r") as f:
        for name in ("shuffled", "checksummed", "sparse"):
            want = np.asarray(f[name][1:5])
            out = np.zeros((6, *want.shape[1:]), dtype=want.dtype)
            raw.read(name, (slice(1, 5), *(slice(0, s) for s in want.shape[1:])), out=out[2:6])
            assert out[2:6].tobytes() == want.tobytes()
            assert not out[:2].any()


def test_a_damaged_chunk_is_named(tmp_path: Path) -> None:
    """A chunk libdeflate cannot inflate goes to h5py, whose error names the variable."""
    path = tmp_path / "damaged.h5"
    values = np.arange(4 * 50 * 50, dtype="f4").reshape(4, 50, 50)
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=values, chunks=(1, 50, 50), compression="gzip", shuffle=True)
    with h5py.File(path, "r") as f:
        info = f["v"].id.get_chunk_info_by_coord((2, 0, 0))
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xff" * 64)
    raw = open_raw(SourceRef(str(path)))
    assert (
        raw.read("v", (slice(0, 2), slice(0, 50), slice(0, 50))).tobytes() == values[:2].tobytes()
    )
    with pytest.raises(ConversionError, match=r"cannot read v\[0:4"):
        raw.read("v", (slice(0, 4), slice(0, 50), slice(0, 50)))
