"""A user's image for the cloud screen: a PNG or a GeoTIFF decoded to the 8-bit RGB quicklook
the model reads, with a refusal in one line for anything it cannot screen.

Bands: the first three are red, green, blue (a true-colour PNG, or a GeoTIFF with its bands in
that order); a fourth and further bands (alpha, near infrared...) are accepted and not used, and
an image with fewer than three is refused. Sample values:

- 8-bit (PNG, 8-bit TIFF): already a quicklook, used as it is;
- 16-bit TIFF: digital numbers, by `dn_scale` "landsat8" (Landsat 8/9 Level-1: reflectance
  = 2e-5 DN - 0.1, the default) or "sentinel2" (Level-1C: DN / 10000), then the quicklook;
- floating-point TIFF: top-of-atmosphere reflectance, then the quicklook.

The model was trained at 30 m per pixel; an image at another ground sampling is screened all the
same, and its cloud fractions are the less reliable the further it is from 30 m.
"""

from __future__ import annotations

import io

import numpy as np

from skyrack.errors import UserError
from skyrack.jobs.screen_tiles import TILE
from skyrack.sources.landsat import landsat_reflectance, quicklook

MAX_PIXELS = 2048 * 2048  # a decoded image this large at most (a small PNG can unpack to a huge one)
DN_SCALES = {"landsat8": landsat_reflectance, "sentinel2": lambda dn: np.asarray(dn, np.float64) / 10000.0}
_PNG = b"\x89PNG\r\n\x1a\n"
_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MODES = {"RGB": 3, "RGBA": 4, "RGBX": 4, "P": 3, "PA": 4, "L": 1, "LA": 2, "I": 1, "I;16": 1, "1": 1}


def kind_of(payload: bytes) -> str:
    if payload.startswith(_PNG):
        return "png"
    if payload[:4] in _TIFF:
        return "tiff"
    raise UserError("the image is neither a PNG nor a (Geo)TIFF")


def _check_size(height: int, width: int) -> None:
    if height < TILE or width < TILE:
        raise UserError(f"the image is {width} x {height} pixels; the screen needs at least {TILE} x {TILE}")
    if height * width > MAX_PIXELS:
        raise UserError(f"the image is {width} x {height} pixels; at most {MAX_PIXELS:,} pixels are screened")


def _refuse_bands(bands: int, what: str) -> None:
    if bands < 3:
        raise UserError(f"the {what} has {bands} band(s); the screen needs red, green and blue")


def _png(payload: bytes) -> tuple[np.ndarray, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(payload)) as image:
            bands = _PNG_MODES.get(image.mode, len(image.getbands()))
            _refuse_bands(bands, f"PNG (mode {image.mode})")
            _check_size(image.height, image.width)
            rgb = np.array(image.convert("RGB"), dtype=np.uint8)
    except UserError:
        raise
    except Exception as exc:  # Pillow raises many kinds on a damaged file
        raise UserError(f"the PNG cannot be decoded: {exc}") from None
    return rgb, bands


def _tiff(payload: bytes, dn_scale: str) -> tuple[np.ndarray, int]:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(payload)) as tif:
            series = tif.series[0]
            shape, axes = series.shape, series.axes
            if len(shape) == 2:
                _refuse_bands(1, "TIFF")
            if len(shape) != 3:
                raise UserError(
                    f"the TIFF is {len(shape)}-dimensional ({axes}); one image of bands is screened"
                )
            band_axis = 2 if axes.endswith("S") else 0
            bands = shape[band_axis]
            height, width = (shape[0], shape[1]) if band_axis == 2 else (shape[1], shape[2])
            _refuse_bands(bands, "TIFF")
            _check_size(height, width)
            data = series.asarray()
    except UserError:
        raise
    except Exception as exc:  # tifffile raises many kinds on a damaged or exotic file
        raise UserError(f"the TIFF cannot be decoded: {exc}") from None
    rgb = np.moveaxis(data, 0, -1)[..., :3] if band_axis == 0 else data[..., :3]
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb), bands
    if rgb.dtype == np.uint16:
        return quicklook(DN_SCALES[dn_scale](rgb)), bands
    if rgb.dtype.kind == "f":
        if not np.isfinite(rgb).all():
            raise UserError("the TIFF's reflectances are not all finite")
        return quicklook(rgb), bands
    raise UserError(f"the TIFF's samples are {rgb.dtype}; 8-bit, 16-bit or floating point are screened")


def decode(payload: bytes, dn_scale: str = "landsat8") -> tuple[np.ndarray, int]:
    """(the (H, W, 3) uint8 quicklook, the image's band count) of a PNG or GeoTIFF payload."""
    if dn_scale not in DN_SCALES:
        raise UserError(f"dn_scale must be one of {', '.join(DN_SCALES)}, not {dn_scale!r}")
    return _png(payload) if kind_of(payload) == "png" else _tiff(payload, dn_scale)


def encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()
