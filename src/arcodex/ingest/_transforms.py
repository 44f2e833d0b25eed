"""The template's transforms, applied to each fetched period in their order:
variable selection, renames, unit conversions, attribute fixes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from arcodex.errors import ValidationError

if TYPE_CHECKING:
    import xarray as xr

    from arcodex.ingest._model import Transforms

__all__ = ["apply_transforms"]


def apply_transforms(ds: xr.Dataset, transforms: Transforms) -> xr.Dataset:
    """``ds`` shaped as the template says (a new dataset; ``ds`` is left as it was).

    Raises:
        ValidationError: A variable the transforms name is not in ``ds``.
    """
    if transforms.variables is not None:
        missing = sorted(set(transforms.variables) - set(ds.data_vars))
        if missing:
            raise ValidationError(
                f"transforms.variables names {missing}, not in the data (it has "
                f"{sorted(map(str, ds.data_vars))})"
            )
        ds = ds[list(transforms.variables)]
    if transforms.rename:
        unknown = sorted(
            set(transforms.rename) - set(map(str, ds.variables)) - set(map(str, ds.dims))
        )
        if unknown:
            raise ValidationError(f"transforms.rename names {unknown}, not in the data")
        ds = ds.rename(transforms.rename)
    # A shallow copy with attributes of its own: the fixes below must not reach the source.
    ds = ds.copy()
    for name, conversion in transforms.units.items():
        if name not in ds.variables:
            raise ValidationError(f"transforms.units names {name!r}, not in the data")
        var = ds[name]
        attrs = {**var.attrs, "units": conversion.to}
        converted = (
            var * conversion.scale + conversion.offset
            if (conversion.scale != 1.0 or conversion.offset != 0.0)
            else var
        )
        converted = converted.assign_attrs(attrs)
        converted.encoding = dict(var.encoding)
        ds[name] = converted
    for name, attrs in transforms.attributes.items():
        if not name:
            ds.attrs.update(attrs)
            continue
        if name not in ds.variables:
            raise ValidationError(f"transforms.attributes names {name!r}, not in the data")
        ds[name].attrs.update(attrs)
    return ds
