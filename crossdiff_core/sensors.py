"""Sensor registry: resolution ratio, canonical band names, bit depth and MTF gains per sensor.

MTF gains at Nyquist follow the pansharpening benchmark toolbox. Where no public value exists
(GaoFen-2, Landsat 8/9 OLI, generic sensors) the toolbox falls back to 0.3 for the MS bands and
0.15 for the PAN; such sensors carry ``mtf_is_public=False`` so reports can say so.

Band edges are the nominal spectral ranges (micrometres) of the operators' public sensor
documentation: DigitalGlobe/Maxar data sheets (QuickBird, WorldView-2/3/4, GeoEye-1), the IKONOS
instrument description (Space Imaging), CRESDA's GF-2 specification and USGS's Landsat 8/9 OLI
band designations. ``wavelength_um`` is their centre, ``fwhm_um`` their width; outputs carry both
per band (``crossdiff_core.infer.writers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

FOUR_BANDS = ("blue", "green", "red", "nir")
EIGHT_BANDS = ("coastal", "blue", "green", "yellow", "red", "rededge", "nir", "nir2")

# Nominal band edges (low, high) in micrometres, by canonical band name.
_WORLDVIEW_EDGES = {
    "coastal": (0.400, 0.450), "blue": (0.450, 0.510), "green": (0.510, 0.580),
    "yellow": (0.585, 0.625), "red": (0.630, 0.690), "rededge": (0.705, 0.745),
    "nir": (0.770, 0.895), "nir2": (0.860, 1.040),
}
_GEOEYE_EDGES = {"blue": (0.450, 0.510), "green": (0.510, 0.580), "red": (0.655, 0.690),
                 "nir": (0.780, 0.920)}
BAND_EDGES_UM: dict[str, dict[str, tuple[float, float]]] = {
    "QuickBird": {"blue": (0.450, 0.520), "green": (0.520, 0.600), "red": (0.630, 0.690),
                  "nir": (0.760, 0.900)},
    "IKONOS": {"blue": (0.445, 0.516), "green": (0.506, 0.595), "red": (0.632, 0.698),
               "nir": (0.757, 0.853)},
    "GeoEye-1": _GEOEYE_EDGES,
    "WorldView-2": _WORLDVIEW_EDGES,
    "WorldView-3": _WORLDVIEW_EDGES,
    "WorldView-4": _GEOEYE_EDGES,
    "GaoFen-2": {"blue": (0.450, 0.520), "green": (0.520, 0.590), "red": (0.630, 0.690),
                 "nir": (0.770, 0.890)},
    "Landsat-8": {"blue": (0.452, 0.512), "green": (0.533, 0.590), "red": (0.636, 0.673),
                  "nir": (0.851, 0.879)},
    "Landsat-9": {"blue": (0.452, 0.512), "green": (0.533, 0.590), "red": (0.636, 0.673),
                  "nir": (0.851, 0.879)},
}
FALLBACK_MS_GAIN = 0.3
FALLBACK_PAN_GAIN = 0.15


@dataclass(frozen=True)
class Sensor:
    """What the pipeline needs to know about one sensor."""

    name: str
    ratio: int
    bands: tuple[str, ...]
    bit_depth: int
    mtf_gains_ms: tuple[float, ...]
    mtf_gain_pan: float
    mtf_is_public: bool = True
    aliases: tuple[str, ...] = field(default=(), compare=False)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def max_dn(self) -> int:
        return 2**self.bit_depth - 1

    def band_edges_um(self, band: str) -> tuple[float, float] | None:
        """Nominal (low, high) edges of ``band`` in micrometres; None when not documented (a
        generic sensor's ``band1``...)."""
        return BAND_EDGES_UM.get(self.name, {}).get(band)

    def wavelength_um(self, band: str) -> float | None:
        """Centre of the nominal band, in micrometres (None when not documented)."""
        edges = self.band_edges_um(band)
        return None if edges is None else round((edges[0] + edges[1]) / 2, 4)

    def fwhm_um(self, band: str) -> float | None:
        """Width of the nominal band, in micrometres (None when not documented)."""
        edges = self.band_edges_um(band)
        return None if edges is None else round(edges[1] - edges[0], 4)

    def rgb_band_indices(self) -> tuple[int, int, int]:
        """Indices of red, green, blue (true colour) in this sensor's band order."""
        return tuple(self.bands.index(name) for name in ("red", "green", "blue"))  # type: ignore[return-value]

    def as_attrs(self) -> dict:
        """Plain-type attributes for a scene store."""
        return {
            "sensor": self.name,
            "ratio": self.ratio,
            "bit_depth": self.bit_depth,
            "band_names": list(self.bands),
            "mtf_gains_ms": list(self.mtf_gains_ms),
            "mtf_gain_pan": self.mtf_gain_pan,
            "mtf_is_public": self.mtf_is_public,
        }


SENSORS: dict[str, Sensor] = {
    s.name: s
    for s in (
        Sensor("QuickBird", 4, FOUR_BANDS, 11, (0.34, 0.32, 0.30, 0.22), 0.15,
               aliases=("qb", "quickbird", "quick_bird")),
        Sensor("IKONOS", 4, FOUR_BANDS, 11, (0.26, 0.28, 0.29, 0.28), 0.17,
               aliases=("ik", "ikonos")),
        Sensor("GeoEye-1", 4, FOUR_BANDS, 11, (0.23,) * 4, 0.16,
               aliases=("ge1", "geoeye", "geoeye1", "geoeye-1", "ge")),
        Sensor("WorldView-2", 4, EIGHT_BANDS, 11, (0.35,) * 7 + (0.27,), 0.11,
               aliases=("wv2", "worldview2", "worldview-2")),
        Sensor("WorldView-3", 4, EIGHT_BANDS, 11,
               (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14,
               aliases=("wv3", "worldview3", "worldview-3")),
        Sensor("WorldView-4", 4, FOUR_BANDS, 11, (0.23,) * 4, 0.16,
               aliases=("wv4", "worldview4", "worldview-4")),
        Sensor("GaoFen-2", 4, FOUR_BANDS, 10, (FALLBACK_MS_GAIN,) * 4, FALLBACK_PAN_GAIN,
               mtf_is_public=False, aliases=("gf2", "gaofen2", "gaofen-2", "gf-2")),
        Sensor("Landsat-8", 2, FOUR_BANDS, 16, (FALLBACK_MS_GAIN,) * 4, FALLBACK_PAN_GAIN,
               mtf_is_public=False, aliases=("l8", "landsat8", "landsat_8", "lc08", "oli")),
        Sensor("Landsat-9", 2, FOUR_BANDS, 16, (FALLBACK_MS_GAIN,) * 4, FALLBACK_PAN_GAIN,
               mtf_is_public=False, aliases=("l9", "landsat9", "landsat_9", "lc09", "oli2")),
    )
}


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "")


_LOOKUP: dict[str, str] = {}
for _sensor in SENSORS.values():
    for _key in (_sensor.name, *_sensor.aliases):
        _LOOKUP[_normalise(_key)] = _sensor.name


def known_sensor_names() -> list[str]:
    return sorted(SENSORS)


def generic_sensor(ratio: int, n_bands: int, bit_depth: int = 16, name: str = "generic") -> Sensor:
    """A sensor nobody registered: explicit ratio, fallback MTF gains, bands ``band1..bandN``."""
    if ratio < 2 or int(ratio) != ratio:
        raise ValueError(f"generic sensor needs an integer ratio >= 2, got {ratio!r}")
    if n_bands < 1:
        raise ValueError(f"generic sensor needs at least one band, got {n_bands!r}")
    bands = FOUR_BANDS if n_bands == 4 else EIGHT_BANDS if n_bands == 8 else tuple(
        f"band{i + 1}" for i in range(n_bands)
    )
    return Sensor(name, int(ratio), bands, bit_depth, (FALLBACK_MS_GAIN,) * n_bands,
                  FALLBACK_PAN_GAIN, mtf_is_public=False)


def get_sensor(
    name: str | Sensor, ratio: int | None = None, n_bands: int | None = None
) -> Sensor:
    """Resolve a sensor by name or alias (case-insensitive: ``QB``, ``quickbird``, ``WV3`` ...).

    ``generic`` needs ``ratio`` and ``n_bands``; a registered sensor is checked against them
    when they are given.
    """
    if isinstance(name, Sensor):
        sensor = name
    elif _normalise(name) in ("generic", "none", ""):
        if ratio is None or n_bands is None:
            raise ValueError("sensor 'generic' needs an explicit ratio and band count")
        return generic_sensor(ratio, n_bands)
    else:
        key = _normalise(name)
        if key not in _LOOKUP:
            raise ValueError(
                f"unknown sensor {name!r}: use one of {', '.join(known_sensor_names())} "
                "(or an alias such as QB, WV3, L8), or 'generic' with an explicit ratio"
            )
        sensor = SENSORS[_LOOKUP[key]]
    if ratio is not None and ratio != sensor.ratio:
        raise ValueError(f"sensor {sensor.name} has ratio {sensor.ratio}, not {ratio}")
    if n_bands is not None and n_bands != sensor.n_bands:
        if n_bands == 4 and sensor.n_bands == 8:
            # 4-band products of 8-band sensors (e.g. WV3 BGRN bundles) keep the matching gains.
            idx = [sensor.bands.index(b) for b in FOUR_BANDS]
            return replace(sensor, bands=FOUR_BANDS,
                           mtf_gains_ms=tuple(sensor.mtf_gains_ms[i] for i in idx))
        raise ValueError(f"sensor {sensor.name} has {sensor.n_bands} MS bands, not {n_bands}")
    return sensor
