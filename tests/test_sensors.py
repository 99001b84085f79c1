import pytest

from crossdiff_core.sensors import SENSORS, get_sensor, known_sensor_names


@pytest.mark.parametrize("alias, name", [("QB", "QuickBird"), ("quickbird", "QuickBird"),
                                          ("WV3", "WorldView-3"), ("worldview-2", "WorldView-2"),
                                          ("ik", "IKONOS"), ("GF2", "GaoFen-2"),
                                          ("L8", "Landsat-8"), ("landsat_9", "Landsat-9"),
                                          ("GeoEye-1", "GeoEye-1"), ("wv4", "WorldView-4")])
def test_aliases_resolve(alias, name):
    assert get_sensor(alias).name == name


def test_registry_is_consistent():
    for sensor in SENSORS.values():
        assert len(sensor.mtf_gains_ms) == sensor.n_bands
        assert sensor.ratio in (2, 4)
        assert set(("red", "green", "blue")) <= set(sensor.bands)
    assert get_sensor("WV3").bands[0] == "coastal" and get_sensor("WV3").n_bands == 8
    assert get_sensor("L8").ratio == 2 and not get_sensor("L8").mtf_is_public
    assert get_sensor("IKONOS").mtf_is_public


def test_unknown_sensor_names_choices():
    with pytest.raises(ValueError, match="unknown sensor 'Pleiades'.*QuickBird"):
        get_sensor("Pleiades")
    assert "IKONOS" in known_sensor_names()


def test_generic_and_band_checks():
    generic = get_sensor("generic", ratio=3, n_bands=5)
    assert generic.ratio == 3 and generic.bands[-1] == "band5" and not generic.mtf_is_public
    with pytest.raises(ValueError, match="explicit ratio"):
        get_sensor("generic")
    with pytest.raises(ValueError, match="ratio 4, not 2"):
        get_sensor("QB", ratio=2)
    four = get_sensor("WV3", n_bands=4)
    assert four.bands == ("blue", "green", "red", "nir") and four.mtf_gains_ms[0] == 0.355
    with pytest.raises(ValueError, match="not 3"):
        get_sensor("QB", n_bands=3)
