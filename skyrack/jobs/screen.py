"""The `screen` workload: cloud screening of Earth-observation imagery on board, as ESA's
Phi-sat-1 (CloudScout) does: a tile more than 70 % cloud is not worth its downlink, so only the
clear tiles and one line per tile come down.

Params (unknown keys are refused):

- `{"source": "upload"}` (optionally `"dn_scale": "landsat8" | "sentinel2"` for a 16-bit
  GeoTIFF): the payload is the customer's PNG or GeoTIFF (`screen_image` says which bands and
  sample values are read), cut into 16 x 16 tiles (a remainder narrower than a tile at the right
  or bottom edge is not screened);
- `{"source": "onboard", "tiles": N}`: N tiles "captured by the on-board imager", drawn without
  replacement (by the job's seed) from the real scenes' held-out test tiles, which the model
  never saw in training nor in choosing its threshold; no payload.

The result, `screen.json`: per tile its estimated cloud fraction and keep / discard, and one PNG
(base64) of the image (for on-board tiles, a mosaic of them in the drawn order) with the
discarded tiles blacked out: only the insight comes down. Its summary counts the tiles kept and
discarded and compares the result's bytes with the raw tiles' bytes, the tiles in every band the
image has at 16 bits, which is what the satellite would downlink without screening.

`estimate` is the wall time on this machine from a per-tile rate measured here once (through
this same code on real tiles) and cached, and an upper bound of the result's size (every tile
kept, the PNG incompressible).
"""

from __future__ import annotations

import base64
import json
import math
import time

import numpy as np

from skyrack.errors import UserError
from skyrack.jobs import screen_model
from skyrack.jobs.screen_image import DN_SCALES, decode, encode_png
from skyrack.jobs.screen_tiles import TILE, cut, grid, tiles_of
from skyrack.jobs.workload import Estimate, Outcome
from skyrack.sources.cache import cache_dir
from skyrack.sources.landsat import scenes
from skyrack.storage import atomic_write_bytes

RESULT_NAME = "screen.json"
SOURCES = {"upload": {"source", "dn_scale"}, "onboard": {"source", "tiles"}}
RAW_BYTES_PER_SAMPLE = 2  # 16-bit digital numbers, as imagers deliver them
_HEAD_BYTES = 1024  # the result's fixed keys, at most
_ENTRY_BYTES = {"upload": 64, "onboard": 112}  # one tile's line in the result, at most
_CALIBRATION_TILES = (16, 256)

_model: screen_model.Model | None = None


def model(progress=None) -> screen_model.Model:
    """The cloud-screen model, loaded (or trained) once per process."""
    global _model
    if _model is None:
        _model = screen_model.load(progress=progress)
    return _model


def retrain(progress=None) -> screen_model.Model:
    global _model
    _model = screen_model.fit(progress=progress)
    return _model


_held_out = None


def _test_tiles():
    """The real scenes' held-out tiles: the on-board imager's captures (read once per process)."""
    global _held_out
    if _held_out is None:
        _held_out = tiles_of(scenes(), "test")
    return _held_out


def prepare() -> None:
    """Load (or train, on first use) the model and read the on-board imager's tiles, once per
    process: the on-board service calls this before it times a job."""
    model()
    _test_tiles()


def _source(params) -> str:
    if not isinstance(params, dict):
        raise UserError("a screen job's params are a JSON object")
    source = params.get("source")
    if source not in SOURCES:
        raise UserError(f"params.source must be one of {', '.join(SOURCES)}, not {source!r}")
    unknown = sorted(set(params) - SOURCES[source])
    if unknown:
        raise UserError(f"unknown screen param(s) for source {source!r}: {', '.join(unknown)}")
    return source


def _onboard_count(params, payload: bytes) -> int:
    if payload:
        raise UserError("an on-board screen job carries no payload (its tiles are the imager's)")
    n = params.get("tiles")
    available = len(_test_tiles())
    if not isinstance(n, int) or isinstance(n, bool) or not (1 <= n <= available):
        raise UserError(f"params.tiles must be a whole number from 1 to {available}, got {n!r}")
    return n


def _upload_image(params, payload: bytes) -> tuple[np.ndarray, int]:
    dn_scale = params.get("dn_scale", "landsat8")
    if dn_scale not in DN_SCALES:
        raise UserError(f"params.dn_scale must be one of {', '.join(DN_SCALES)}, not {dn_scale!r}")
    if not payload:
        raise UserError("an upload screen job carries its image (PNG or GeoTIFF) as the payload")
    return decode(payload, dn_scale)


def check(params: dict, payload: bytes) -> None:
    """Refuse, in one line, a job this workload cannot run."""
    if _source(params) == "onboard":
        _onboard_count(params, payload)
    else:
        _upload_image(params, payload)


def _tile_count(params, payload) -> tuple[str, int]:
    source = _source(params)
    if source == "onboard":
        return source, _onboard_count(params, payload)
    rgb, _ = _upload_image(params, payload)
    rows, cols = grid(*rgb.shape[:2])
    return source, rows * cols


def _png_bound(height: int, width: int) -> int:
    raw = height * (1 + 3 * width)  # filter byte + RGB per row, stored without compression
    return raw + raw // 1000 + 1024


def estimate(params: dict, payload: bytes) -> Estimate:
    source, tiles = _tile_count(params, payload)
    rows, cols = _layout(tiles) if source == "onboard" else (tiles, 1)
    png = _png_bound(rows * TILE, cols * TILE)
    result_bytes = _HEAD_BYTES + tiles * _ENTRY_BYTES[source] + 4 * math.ceil(png / 3)
    rate = calibration()
    return Estimate(wall_s=rate["overhead_s"] + rate["per_tile_s"] * tiles, result_bytes=int(result_bytes))


def _layout(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _screen(
    tiles: np.ndarray, cols: int, bands: int, entries: list[dict], source: str, scorer=None
) -> Outcome:
    """The result of screening `tiles` laid out `cols` across; `scorer` (the model by default)
    gives (scores, discard-above threshold, its name) for the tiles."""
    cloud, threshold, scorer_id = scorer(tiles) if scorer else _model_scores(tiles)
    keep = cloud <= threshold
    rows = math.ceil(len(tiles) / cols)
    mosaic = np.zeros((rows * TILE, cols * TILE, 3), np.uint8)
    for i in np.flatnonzero(keep):
        r, c = divmod(int(i), cols)
        mosaic[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = tiles[i]
    for entry, f, k in zip(entries, cloud, keep, strict=True):
        entry["cloud"] = round(float(f), 3)
        entry["keep"] = bool(k)
    kept = int(keep.sum())
    body = {
        "kind": "screen",
        "source": source,
        "tile_px": TILE,
        "grid": [rows, cols],
        "discard_above": round(threshold, 4),
        "model_sha256": scorer_id,
        "tiles": entries,
        "kept": kept,
        "discarded": len(tiles) - kept,
        "kept_png": base64.b64encode(encode_png(mosaic)).decode("ascii"),
    }
    result = json.dumps(body, separators=(",", ":")).encode("utf-8")
    raw = len(tiles) * TILE * TILE * bands * RAW_BYTES_PER_SAMPLE
    summary = {
        "tiles": len(tiles),
        "kept": kept,
        "discarded": len(tiles) - kept,
        "raw_bytes": raw,
        "result_bytes": len(result),
        "ratio": round(len(result) / raw, 4),
    }
    return Outcome(result=result, name=RESULT_NAME, summary=summary)


def _model_scores(tiles: np.ndarray) -> tuple[np.ndarray, float, str]:
    m = model()
    return m.cloud_fraction(tiles), m.threshold, m.sha256


def onboard_tiles(n: int, seed: int):
    """`n` held-out test tiles drawn by `seed`, and the result's line for each."""
    test = _test_tiles()
    pick = np.random.default_rng(seed).choice(len(test), size=n, replace=False)
    entries = [
        {"scene": str(test.scene[i]), "at": [int(v) for v in test.origin[i]], "index": j}
        for j, i in enumerate(pick)
    ]
    return test.images[pick], entries


def run(params: dict, payload: bytes, *, seed: int) -> Outcome:
    """Screen the job's tiles here; the job's seed draws the on-board tiles (its own numpy
    Generator: no global RNG is touched)."""
    return run_with(None, params, payload, seed=seed)


def run_with(scorer, params: dict, payload: bytes, *, seed: int) -> Outcome:
    """`run` with `scorer(tiles) -> (scores, threshold, name)` in place of the model (None: the
    model): how the benchmark puts its reference classifier through the same pipeline."""
    source = _source(params)
    if source == "onboard":
        n = _onboard_count(params, payload)
        tiles, entries = onboard_tiles(n, seed)
        return _screen(tiles, _layout(n)[1], 3, entries, source, scorer)
    rgb, bands = _upload_image(params, payload)
    rows, cols = grid(*rgb.shape[:2])
    entries = [{"row": r, "col": c} for r in range(rows) for c in range(cols)]
    return _screen(cut(rgb), cols, bands, entries, source, scorer)


def _calibration_png(n: int) -> bytes:
    test = _test_tiles()
    side = math.isqrt(n)
    images = test.images[:n].reshape(side, side, TILE, TILE, 3).swapaxes(1, 2)
    return encode_png(images.reshape(side * TILE, side * TILE, 3))


def calibration(progress=None) -> dict:
    """Seconds per job and per tile on this machine: measured once (uploads of 16 and 256 real
    held-out tiles as PNG, the best of three runs each), cached beside the model."""
    m = model(progress=progress)
    path = cache_dir("models") / f"screen-rate-v{screen_model.VERSION}.json"
    try:
        rate = json.loads(path.read_text())
        if rate["model_sha256"] == m.sha256 and rate["per_tile_s"] >= 0 and rate["overhead_s"] >= 0:
            return rate
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, damaged or for another model: measure below
    if progress:
        progress("measuring the cloud screen's per-tile rate on this machine")
    seconds = []
    for n in _CALIBRATION_TILES:
        payload = _calibration_png(n)
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            run({"source": "upload"}, payload, seed=0)
            best = min(best, time.perf_counter() - started)
        seconds.append(best)
    (n0, n1), (s0, s1) = _CALIBRATION_TILES, seconds
    per_tile = max((s1 - s0) / (n1 - n0), 0.0)
    rate = {"model_sha256": m.sha256, "per_tile_s": per_tile, "overhead_s": max(s0 - per_tile * n0, 0.0)}
    atomic_write_bytes(path, json.dumps(rate, indent=1).encode())
    return rate
