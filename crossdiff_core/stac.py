"""STAC Items (https://stacspec.org) for what the pipeline reads and writes.

**Items written.** Every scene store gets one beside it, ``<scene>.zarr.stac.json``
(``write_store_item``, called by ingestion), and every pansharpened output one beside it,
``<output>.stac.json`` (``write_output_item``, called by the output writer). Both are STAC 1.1
Items with the extensions

- ``eo`` (v1.1.0): ``eo:bands`` per asset (name, common name, centre wavelength and width in
  micrometres where ``crossdiff_core.sensors`` documents the band);
- ``projection`` (v2.0.0): ``proj:code`` (``EPSG:<n>``; projection v2 renamed ``proj:epsg``), or
  ``proj:wkt2`` for a CRS without an EPSG code, ``proj:shape`` and ``proj:transform`` (the PAN grid
  on the Item, the MS grid on a store's ``ms`` asset);
- ``raster`` (v1.1.0): ``raster:bands`` (``data_type``, ``nodata``, ``spatial_resolution``,
  ``bits_per_sample``);
- ``processing`` (v1.0.0): ``processing:software`` ``{"crossdiff": version}`` and
  ``processing:lineage`` (what was done, in words);

``bbox`` and ``geometry`` are the footprint in WGS84 (longitude, latitude), ``gsd`` the PAN pixel
size, links ``derived_from`` name the inputs (relative paths for local files, URLs as given with the
query string left out) and ``crossdiff:*`` properties hold the rest (source sha256, alignment rule,
method, model and version). ``datetime`` is the acquisition time when the source states it
(Landsat MTL, a STAC Item's datetime); otherwise the time the Item was made, and
``crossdiff:datetime_is`` says ``"processing"`` instead of ``"acquisition"``. Items are written
atomically (``crossdiff_core.atomic``), outside the store so its integrity manifest stays valid;
ingest sweeps the temporary files of killed runs with those of the stores.

**Items read** (``item_pair``): ``crossdiff ingest ITEM.json`` (a file or a URL) takes the PAN and
the MS from the Item's GeoTIFF assets (``image/tiff`` or a ``.tif``/``.tiff`` href), each found by
the first of these rules that picks exactly one asset:

1. the asset key: ``pan``/``panchromatic`` for the PAN; ``ms``/``mul``/``multispectral``/``msi``
   for the MS (case-insensitive);
2. the asset roles: ``pan``/``panchromatic``; ``ms``/``multispectral``;
3. the asset's bands (``eo:bands``, or STAC 1.1 ``bands``): one band with common name ``pan``
   for the PAN; two bands or more for the MS.

An Item whose MS is one asset per band (USGS Landsat Collection 2 Items) is refused: give the
bundle or a two-file pair instead. Relative hrefs are resolved against the Item's location.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension

from crossdiff_core.atomic import atomic_write
from crossdiff_core.io.errors import CorruptInputError, MissingBandError, UnknownFormatError
from crossdiff_core.io.remote import (
    is_remote,
    join_href,
    public_uri,
    read_remote_bytes,
    remote_name,
)

ITEM_SUFFIX = ".stac.json"
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.0.0/schema.json"
ZARR_MEDIA_TYPE = "application/vnd+zarr"
COG_MEDIA_TYPE = str(pystac.MediaType.COG)
# Our canonical band names -> eo common names (eo v1.1.0's list).
COMMON_NAMES = {
    "coastal": "coastal", "blue": "blue", "green": "green", "yellow": "yellow", "red": "red",
    "rededge": "rededge", "nir": "nir", "nir2": "nir09", "swir1": "swir16", "swir2": "swir22",
    "pan": "pan",
}
_PAN_KEYS = ("pan", "panchromatic")
_MS_KEYS = ("ms", "mul", "multispectral", "msi")
_RASTER_TYPES = ("image/tiff", "image/geotiff")


# ------------------------------------------------------------------------ STAC Items as input


@dataclass(frozen=True)
class ItemPair:
    """The PAN and MS of a STAC Item (local paths or URLs) and what the Item says of them."""

    pan: str | Path
    ms: str | Path
    scene_id: str
    sensor_hint: str = ""
    extra_attrs: dict = field(default_factory=dict)


def read_item(source: str | Path) -> pystac.Item:
    """The STAC Item at ``source`` (a local JSON file or a URL); errors name it."""
    try:
        raw = read_remote_bytes(source) if is_remote(source) else Path(source).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        if not is_remote(source):
            raise CorruptInputError(f"{source}: cannot read the STAC Item ({error})") from error
        raise
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise CorruptInputError(f"{source}: not a STAC Item (not JSON: {error})") from error
    if not isinstance(data, dict) or data.get("type") != "Feature" or "assets" not in data:
        raise UnknownFormatError(
            f"{source}: a .json source must be a STAC Item (type Feature, with assets) whose "
            "assets are the PAN and the MS GeoTIFF"
        )
    try:
        return pystac.Item.from_dict(data, preserve_dict=False)
    except (KeyError, TypeError, ValueError, pystac.STACError) as error:
        raise CorruptInputError(f"{source}: not a valid STAC Item ({error})") from error


def _asset_bands(asset: pystac.Asset) -> list[dict]:
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    return [b for b in bands if isinstance(b, dict)]


def _is_raster(asset: pystac.Asset) -> bool:
    media = (asset.media_type or "").lower()
    href = asset.href.split("?", 1)[0].lower()
    return media.startswith(_RASTER_TYPES) or href.endswith((".tif", ".tiff"))


def _pick(assets: dict[str, pystac.Asset], kind: str) -> str | None:
    """The key of the one asset that is the ``kind`` ("PAN" or "MS"), by the first rule that
    finds exactly one (module docstring); None when no rule does."""
    keys, roles = (_PAN_KEYS, _PAN_KEYS) if kind == "PAN" else (_MS_KEYS, _MS_KEYS)

    def by_bands(asset: pystac.Asset) -> bool:
        bands = _asset_bands(asset)
        if kind == "PAN":
            return len(bands) == 1 and str(bands[0].get("common_name", "")).lower() == "pan"
        return len(bands) >= 2

    rules = (
        lambda key, asset: key.lower() in keys,
        lambda key, asset: any(str(r).lower() in roles for r in asset.roles or ()),
        lambda key, asset: by_bands(asset),
    )
    for rule in rules:
        found = [key for key, asset in assets.items() if rule(key, asset)]
        if len(found) == 1:
            return found[0]
    return None


def item_pair(source: str | Path) -> ItemPair:
    """The PAN and MS assets of the STAC Item at ``source`` (rules: module docstring)."""
    item = read_item(source)
    assets = {key: asset for key, asset in item.assets.items() if _is_raster(asset)}
    picked = {kind: _pick(assets, kind) for kind in ("PAN", "MS")}
    if None in picked.values() or picked["PAN"] == picked["MS"]:
        listed = ", ".join(sorted(item.assets)) or "none"
        missing = " and ".join(k for k, v in picked.items() if v is None) or "PAN/MS"
        raise MissingBandError(
            f"{source}: cannot tell which GeoTIFF asset is the {missing} (assets: {listed}); "
            "name them 'pan' and 'ms', or give them the roles 'pan' and 'multispectral', or "
            "eo:bands (one band with common_name 'pan'; the MS bands in one asset)"
        )
    props = item.properties
    hint = " ".join(str(props.get(key, "")) for key in ("platform", "constellation"))
    hint += " " + " ".join(str(i) for i in props.get("instruments") or [])
    extra = {"stac_item": public_uri(source) if is_remote(source) else str(source)}
    if item.datetime is not None:
        extra["acquisition_time"] = item.datetime.isoformat()
    return ItemPair(
        pan=join_href(source, assets[picked["PAN"]].href),
        ms=join_href(source, assets[picked["MS"]].href),
        scene_id=item.id,
        sensor_hint=hint,
        extra_attrs=extra,
    )


# ------------------------------------------------------------------------ shared pieces


def item_path(path: str | Path) -> Path:
    """Where the Item of a store or output at ``path`` lies: ``<path>.stac.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ITEM_SUFFIX)


store_item_path = item_path
output_item_path = item_path


def _software_version() -> str:
    from crossdiff_core import __version__

    return str(__version__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _parse_time(value: object) -> dt.datetime | None:
    """An acquisition time as recorded in store attributes, or None."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    if "T" in text:
        date, _, clock = text.partition("T")
        # Landsat's SCENE_CENTER_TIME carries 7 fractional digits; Python takes 6.
        head, dot, tail = clock.partition(".")
        if dot:
            digits = "".join(c for c in tail if c.isdigit())
            zone = tail[len(digits):]
            clock = f"{head}.{digits[:6]}{zone}"
        text = f"{date}T{clock}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _footprint(crs, transform, shape: tuple[int, int]) -> tuple[list[float], dict]:
    """bbox and polygon (corners and edge midpoints, counter-clockwise) of the grid in WGS84."""
    from rasterio.warp import transform as warp_points

    height, width = shape
    steps = 2  # a point mid-edge too: projected straight edges bend a little in WGS84
    cols = [width * i / steps for i in range(steps + 1)]
    rows = [height * i / steps for i in range(steps + 1)]
    ring = ([(c, 0.0) for c in cols] + [(width, r) for r in rows[1:]]
            + [(c, height) for c in reversed(cols[:-1])] + [(0.0, r) for r in reversed(rows[1:-1])])
    xs = [transform.a * col + transform.b * row + transform.c for col, row in ring]
    ys = [transform.d * col + transform.e * row + transform.f for col, row in ring]
    lon, lat = warp_points(crs, "EPSG:4326", xs, ys)
    coords = [[round(x, 9), round(y, 9)] for x, y in zip(lon, lat, strict=True)]
    # North-up grids go clockwise around the ring above; GeoJSON's exterior rings run
    # counter-clockwise (RFC 7946): from the top-left corner down the left edge.
    coords = [coords[0], *reversed(coords[1:]), coords[0]]
    bbox = [min(lon), min(lat), max(lon), max(lat)]
    return [round(v, 9) for v in bbox], {"type": "Polygon", "coordinates": [coords]}


def _set_projection(target, crs, transform, shape: tuple[int, int]) -> None:
    proj = ProjectionExtension.ext(target, add_if_missing=True)
    epsg = crs.to_epsg() if crs is not None else None
    if epsg is not None:
        proj.epsg = int(epsg)
    elif crs is not None:
        proj.epsg = None
        proj.wkt2 = crs.to_wkt()
    proj.shape = [int(shape[0]), int(shape[1])]
    proj.transform = [float(v) for v in tuple(transform)[:6]]


def _metres(crs, transform) -> float | None:
    """The pixel size in metres when the CRS is projected in metres."""
    if crs is None or not crs.is_projected:
        return None
    factor = crs.linear_units_factor[1] if crs.linear_units_factor else 1.0
    return round(abs(transform.a) * factor, 6)


def _spectra(sensor_name: str | None, bands: Sequence[str]) -> dict[str, tuple[float, float]]:
    """(centre, width) in micrometres by band name, where ``crossdiff_core.sensors`` documents
    the band (``Sensor.wavelength_um`` / ``Sensor.fwhm_um``); {} otherwise."""
    if not sensor_name:
        return {}
    from crossdiff_core import sensors

    try:
        sensor = sensors.get_sensor(sensor_name)
    except ValueError:
        return {}
    centre = getattr(sensor, "wavelength_um", None)
    width = getattr(sensor, "fwhm_um", None)
    if centre is None:
        return {}
    found = {}
    for band in bands:
        value = centre(band)
        if value:
            found[band] = (float(value), float(width(band) or 0.0) if width else 0.0)
    return found


def _eo_bands(names: Sequence[str], sensor_name: str | None) -> list[Band]:
    spectra = _spectra(sensor_name, names)
    bands = []
    for name in names:
        common = COMMON_NAMES.get(str(name).lower())
        centre, width = spectra.get(name, (None, None))
        bands.append(Band.create(name=str(name), common_name=common, center_wavelength=centre,
                                 full_width_half_max=width or None))
    return bands


def _raster_bands(count: int, dtype: str, nodata: float | None, resolution: float | None,
                  bits: int | None = None) -> list[RasterBand]:
    if nodata is not None and isinstance(nodata, float) and math.isnan(nodata):
        nodata_value: Any = "nan"
    else:
        nodata_value = None if nodata is None else _number(nodata)
    if not np.issubdtype(np.dtype(dtype), np.integer):
        bits = None  # a float raster's bit depth says nothing about its samples
    return [RasterBand.create(data_type=str(np.dtype(dtype)), nodata=nodata_value,
                              spatial_resolution=resolution, bits_per_sample=bits)
            for _ in range(count)]


def _number(value: float) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else value


def _href(target: str | Path, item_folder: Path) -> str:
    """A link href: a URL as given (query left out), a local path relative to the Item."""
    text = str(target)
    if is_remote(text) or "://" in text:
        return public_uri(text)
    return os.path.relpath(Path(text).resolve(), item_folder.resolve())


def _title(target: str | Path) -> str:
    text = str(target)
    return remote_name(text) if is_remote(text) else Path(text).name


def _save(item: pystac.Item, path: Path) -> Path:
    data = item.to_dict(include_self_link=False, transform_hrefs=False)
    return atomic_write(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _with_processing(item: pystac.Item, lineage: str, version: str | None = None) -> None:
    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties["processing:software"] = {"crossdiff": version or _software_version()}
    item.properties["processing:lineage"] = lineage


def _datetime(properties: dict, acquired: dt.datetime | None) -> dt.datetime:
    properties["crossdiff:datetime_is"] = "acquisition" if acquired else "processing"
    return acquired or _now()


# ------------------------------------------------------------------------ scene stores


def store_item(store_path: str | Path, sources: Sequence[str | Path] | None = None
               ) -> pystac.Item:
    """The STAC Item of the scene store at ``store_path``: assets ``pan``, ``ms`` (the Zarr
    groups) and ``manifest``; ``sources`` (default: the store's ``source_uris``) become
    ``derived_from`` links."""
    from crossdiff_core.io.store import open_scene

    store = Path(store_path)
    scene = open_scene(store)  # the cheap integrity check; no chunk is read
    attrs = scene.attrs
    folder = store.parent
    crs = scene.pan.rio.crs
    georeferenced = bool(attrs.get("georeferenced", crs is not None)) and crs is not None
    properties: dict[str, Any] = {}
    acquired = _datetime(properties, _parse_time(attrs.get("acquisition_time")))
    bbox = geometry = None
    if georeferenced:
        pan_t = scene.pan.rio.transform()
        bbox, geometry = _footprint(crs, pan_t, scene.pan.shape)
    sensor_name = str(attrs.get("sensor", "")) or None
    item = pystac.Item(id=str(attrs.get("scene_id", store.stem)), geometry=geometry, bbox=bbox,
                       datetime=acquired, properties=properties)
    if sensor_name:
        item.common_metadata.platform = sensor_name.lower()
    item.properties.update({
        "crossdiff:sensor": sensor_name,
        "crossdiff:ratio": int(attrs.get("ratio", 0)) or None,
        "crossdiff:source_name": attrs.get("source_name"),
        "crossdiff:source_sha256": attrs.get("source_sha256"),
        "crossdiff:alignment": (attrs.get("alignment") or {}).get("rule"),
    })
    dtype = str(attrs.get("dtype") or scene.pan.dtype)
    nodata = attrs.get("nodata")
    bits = attrs.get("bit_depth")
    ms_bands = [str(b) for b in scene.ms["band"].values]
    for key, title in (("pan", "Panchromatic band"), ("ms", "Multispectral bands")):
        asset = pystac.Asset(href=f"./{store.name}/{key}", media_type=ZARR_MEDIA_TYPE,
                             roles=["data"], title=f"{title} (Zarr group '{key}' of {store.name})")
        item.add_asset(key, asset)
        array = scene.pan if key == "pan" else scene.ms
        names = ["pan"] if key == "pan" else ms_bands
        resolution = None
        if georeferenced:
            transform = array.rio.transform()
            resolution = _metres(crs, transform)
            _set_projection(asset, crs, transform, array.shape[-2:])
        EOExtension.ext(asset, add_if_missing=True).bands = _eo_bands(names, sensor_name)
        RasterExtension.ext(asset, add_if_missing=True).bands = _raster_bands(
            len(names), dtype, nodata, resolution, int(bits) if bits else None)
    item.add_asset("manifest", pystac.Asset(
        href=f"./{store.name}/manifest.json", media_type=str(pystac.MediaType.JSON),
        roles=["metadata"], title="Integrity manifest: size and sha256 of every file"))
    if georeferenced:
        _set_projection(item, crs, scene.pan.rio.transform(), scene.pan.shape)
        gsd = _metres(crs, scene.pan.rio.transform())
        if gsd:
            item.common_metadata.gsd = gsd
    alignment = attrs.get("alignment") or {}
    rule = alignment.get("rule", "nested")
    if alignment.get("convention"):
        rule += f", {str(alignment['convention']).split(':')[0]}"
    source_name = attrs.get("source_name") or "its source"
    _with_processing(item, (
        f"Ingested from {source_name} (sha256 {attrs.get('source_sha256') or 'unknown'}) into a "
        f"Zarr scene store: native DN, PAN and MS aligned without resampling by the rule "
        f"'{rule}' (ratio {attrs.get('ratio')}; crossdiff_core/io/align.py)."
    ), str(attrs.get("software_version") or "") or None)
    for target in sources if sources is not None else attrs.get("source_uris") or ():
        item.add_link(pystac.Link("derived_from", _href(target, folder),
                                  title=f"source: {_title(target)}"))
    return item


def store_item_is_current(store_path: str | Path) -> bool:
    """Whether the store's Item exists and describes the store as it is (same source sha256 and
    software version): False after a run killed between replacing a store and its Item."""
    from crossdiff_core.io.store import read_store_attrs

    try:
        data = json.loads(store_item_path(store_path).read_text())
        attrs = read_store_attrs(store_path)
    except (OSError, ValueError):
        return False
    props = data.get("properties") or {}
    return (props.get("crossdiff:source_sha256") == attrs.get("source_sha256")
            and (props.get("processing:software") or {}).get("crossdiff")
            == attrs.get("software_version"))


def write_store_item(store_path: str | Path,
                     sources: Sequence[str | Path] | None = None) -> Path:
    """Write the STAC Item of the store at ``store_path`` beside it (``<scene>.zarr.stac.json``),
    atomically; returns its path."""
    return _save(store_item(store_path, sources), store_item_path(store_path))


# ------------------------------------------------------------------------ pansharpened outputs


def _scene_attrs(inputs: Mapping[str, Any]) -> dict:
    """Root attributes of the first input that is a scene store (sensor, acquisition time)."""
    from crossdiff_core.io.store import read_store_attrs

    for entry in inputs.values():
        path = entry.get("path") if isinstance(entry, Mapping) else entry
        if path and not is_remote(str(path)) and (Path(str(path)) / "zarr.json").is_file():
            try:
                return read_store_attrs(path)
            except ValueError:
                continue
    return {}


def _read_output(out: Path) -> dict:
    """Grid, bands and sensor of a written COG or Zarr output."""
    if out.is_dir():
        import xarray as xr

        dataset = xr.open_zarr(out, decode_coords="all", chunks=None)
        name = "fused" if "fused" in dataset.data_vars else next(
            n for n, v in dataset.data_vars.items() if v.dims == ("band", "y", "x"))
        array = dataset[name]
        nodata = array.encoding.get("_FillValue", array.attrs.get("_FillValue"))
        return {
            "crs": array.rio.crs, "transform": array.rio.transform(),
            "shape": tuple(array.shape[-2:]), "dtype": str(array.dtype),
            "nodata": None if nodata is None else float(nodata),
            "bands": [str(b) for b in array["band"].values],
            "sensor": dataset.attrs.get("sensor") or array.attrs.get("sensor"),
            "media_type": ZARR_MEDIA_TYPE,
        }
    import rasterio

    with rasterio.open(out) as dataset:
        tags = dataset.tags()
        return {
            "crs": dataset.crs, "transform": dataset.transform,
            "shape": (dataset.height, dataset.width), "dtype": dataset.dtypes[0],
            "nodata": dataset.nodata,
            "bands": [d or f"band{i + 1}" for i, d in enumerate(dataset.descriptions)],
            "sensor": tags.get("sensor") or tags.get("SENSOR") or tags.get("crossdiff:sensor"),
            "media_type": COG_MEDIA_TYPE,
        }


def output_item(out_path: str | Path, provenance: Mapping[str, Any] | None = None
                ) -> pystac.Item:
    """The STAC Item of the pansharpened output at ``out_path`` (a COG or a Zarr store), read
    from the written file. ``provenance`` may hold ``method``, ``model``, ``model_version``,
    ``inputs`` ({name: {"path", "sha256"}}), ``software_version``, ``parameters``,
    ``clipped_pixels``, ``scene_id``, ``source_sha256`` and ``sensor`` (the record of
    ``crossdiff_core.infer.provenance``); missing keys are left out of the Item."""
    out = Path(out_path)
    provenance = dict(provenance or {})
    info = _read_output(out)
    inputs = provenance.get("inputs") or {}
    if not isinstance(inputs, Mapping):
        inputs = {}
    scene = _scene_attrs(inputs)
    sensor_name = info["sensor"] or provenance.get("sensor") or scene.get("sensor")
    properties: dict[str, Any] = {}
    acquired = _datetime(properties, _parse_time(scene.get("acquisition_time")))
    bbox = geometry = None
    if info["crs"] is not None:
        bbox, geometry = _footprint(info["crs"], info["transform"], info["shape"])
    item = pystac.Item(id=out.stem if out.is_file() else out.name.removesuffix(".zarr"),
                       geometry=geometry, bbox=bbox, datetime=acquired, properties=properties)
    if sensor_name:
        item.common_metadata.platform = str(sensor_name).lower()
    for key in ("method", "model", "model_version", "scene_id", "source_sha256", "parameters",
                "clipped_pixels"):
        if provenance.get(key) is not None:
            item.properties[f"crossdiff:{key}"] = provenance[key]
    if sensor_name:
        item.properties["crossdiff:sensor"] = sensor_name
    resolution = None
    asset = pystac.Asset(href=f"./{out.name}", media_type=info["media_type"], roles=["data"],
                         title="Pansharpened multispectral bands on the PAN grid")
    item.add_asset("data", asset)
    if info["crs"] is not None:
        resolution = _metres(info["crs"], info["transform"])
        _set_projection(item, info["crs"], info["transform"], info["shape"])
        if resolution:
            item.common_metadata.gsd = resolution
    EOExtension.ext(asset, add_if_missing=True).bands = _eo_bands(info["bands"], sensor_name)
    bits = scene.get("bit_depth")
    RasterExtension.ext(asset, add_if_missing=True).bands = _raster_bands(
        len(info["bands"]), info["dtype"], info["nodata"], resolution,
        int(bits) if bits else None)
    method = provenance.get("method") or provenance.get("model") or "an unnamed method"
    model = provenance.get("model")
    version = provenance.get("model_version")
    by = f"{method}" + (f" (model {model}" + (f", version {version}" if version else "") + ")"
                        if model and model != method else "")
    names = ", ".join(str(k) for k in inputs) or "its inputs"
    clipped = provenance.get("clipped_pixels")
    policy = (provenance.get("parameters") or {}).get("clip")
    to_range = {"dtype": "the range of the MS's dtype",
                "input": "each band's range in the input MS"}.get(policy)
    clip_note = ("; not clipped" if policy == "none" else
                 f"; {clipped} pixels clipped to {to_range or 'the valid range'}"
                 if clipped is not None else "")
    _with_processing(item, (
        f"Pansharpened by {by} from {names}: the MS fused with the PAN on the PAN grid, in the "
        f"MS's DN dtype and nodata" + clip_note + "."
    ), provenance.get("software_version"))
    folder = out.parent
    for name, entry in inputs.items():
        path = entry.get("path") if isinstance(entry, Mapping) else entry
        if not path:
            continue
        link = pystac.Link("derived_from", _href(path, folder), title=f"input {name}")
        digest = entry.get("sha256") if isinstance(entry, Mapping) else None
        if digest:
            link.extra_fields["crossdiff:sha256"] = digest
        item.add_link(link)
    model_href = _model_href(model, folder)
    if model_href is not None:
        item.add_link(pystac.Link("derived_from", model_href,
                                  title="model" + (f" version {version}" if version else "")))
    return item


def _model_href(model: object, folder: Path) -> str | None:
    """A link to the model: its folder (relative), a URI (``models:/name@alias``, ``runs:/``,
    ``https://``) as given; None for a classical method's name, which is no file."""
    if not model:
        return None
    text = str(model)
    if ":/" in text:
        return public_uri(text) if is_remote(text) else text
    if Path(text).exists():
        return _href(text, folder)
    return None


def write_output_item(out_path: str | Path, provenance: Mapping[str, Any] | None = None
                      ) -> Path:
    """Write the STAC Item of the output at ``out_path`` beside it (``<output>.stac.json``),
    atomically; returns its path."""
    return _save(output_item(out_path, provenance), output_item_path(out_path))
