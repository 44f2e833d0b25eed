"""Chunk shapes: given explicitly, or derived from a size and an access pattern.

``map`` reads whole fields at one step (one step per chunk, the grid split
only as far as the size needs); ``timeseries`` reads long series at a point
(the whole concatenation dimension, the grid split small); ``balanced`` sits
in between. Derived chunks are aligned with the sources: along the
concatenation dimension they are a multiple or a divisor of the steps per
file where that stays within a factor of two of the size asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from arcodex.errors import ValidationError

__all__ = ["ChunkPattern", "derive_chunks", "parse_chunks"]

ChunkPattern = Literal["map", "timeseries", "balanced"]


def parse_chunks(text: str | Mapping[str, int | str] | None) -> dict[str, int]:
    """``time=24,lat=180`` (or a mapping) to sizes; ``-1``/``full`` means the whole dimension."""
    if text is None or text == "":
        return {}
    items: list[tuple[str, Any]]
    if isinstance(text, Mapping):
        items = list(text.items())
    else:
        items = []
        for part in str(text).split(","):
            name, eq, value = part.partition("=")
            if not eq or not name.strip():
                raise ValidationError(f"bad chunk term {part!r}; write DIM=SIZE, e.g. time=24")
            items.append((name.strip(), value.strip()))
    out: dict[str, int] = {}
    for name, value in items:
        if value in ("full", "-1", -1, None):
            out[str(name)] = -1
            continue
        try:
            size = int(str(value))
        except ValueError:
            raise ValidationError(
                f"chunk size of {name} must be a whole number, not {value!r}"
            ) from None
        if size <= 0:
            raise ValidationError(
                f"chunk size of {name} must be positive (or -1 for the whole dimension)"
            )
        out[str(name)] = size
    return out


def derive_chunks(
    dims: Sequence[str],
    shape: Sequence[int],
    itemsize: int,
    concat_dim: str | None,
    *,
    pattern: ChunkPattern = "balanced",
    chunk_mb: float = 8.0,
    steps_per_file: int | None = None,
    explicit: Mapping[str, int] | None = None,
) -> tuple[int, ...]:
    """The chunk shape of one variable."""
    if chunk_mb <= 0:
        raise ValidationError("--chunk-mb must be positive")
    explicit = explicit or {}
    target = max(1, int(chunk_mb * 2**20 / max(itemsize, 1)))
    chunks = [max(1, n) for n in shape]
    fixed = set()
    for i, dim in enumerate(dims):
        if dim in explicit:
            size = explicit[dim]
            chunks[i] = max(1, shape[i] if size == -1 else min(size, shape[i]))
            fixed.add(i)
    if all(i in fixed for i in range(len(dims))) or not dims:
        return tuple(chunks)
    t = dims.index(concat_dim) if concat_dim in dims else None
    others = [i for i in range(len(dims)) if i != t and i not in fixed]

    def volume() -> int:
        return math.prod(chunks)

    def shrink(indices: Sequence[int], limit: int) -> None:
        # Halve the largest free dimension until the chunk fits.
        while volume() > limit and indices:
            i = max(indices, key=lambda j: chunks[j])
            if chunks[i] == 1:
                break
            chunks[i] = math.ceil(chunks[i] / 2)

    if t is None or t in fixed:
        shrink(others, target)
        return tuple(chunks)
    if pattern == "map":
        chunks[t] = 1
        shrink(others, target)
    elif pattern == "timeseries":
        chunks[t] = shape[t]
        shrink(others, target)
        if volume() > target:
            chunks[t] = max(1, target // max(1, volume() // chunks[t]))
    else:
        # Balanced: about as many steps per chunk as the chunk's edge on the grid.
        chunks[t] = 1
        shrink(others, target)
        per_step = volume()
        grid_cells = max(1, per_step)
        want = max(1, round(math.sqrt(target / grid_cells) * 4)) if grid_cells < target else 1
        while per_step * want > target and want > 1:
            want //= 2
        if per_step * want < target // 4 and want < shape[t]:
            want = max(want, target // per_step)
        chunks[t] = _align(min(max(1, want), shape[t]), steps_per_file, shape[t])
        while volume() > 2 * target and others:
            shrink(others, max(1, volume() // 2))
    return tuple(chunks)


def _align(steps: int, per_file: int | None, total: int) -> int:
    """A multiple or divisor of the steps per file near ``steps`` (within 2×), else ``steps``."""
    if not per_file or per_file <= 1:
        return max(1, min(steps, total))
    if steps >= per_file:
        multiple = max(1, round(steps / per_file)) * per_file
        if steps / 2 <= multiple <= steps * 2:
            return min(multiple, total)
    else:
        divisors = [d for d in range(1, per_file + 1) if per_file % d == 0]
        best = min(divisors, key=lambda d: abs(math.log(d / steps)))
        if steps / 2 <= best <= steps * 2:
            return best
    return max(1, min(steps, total))
