"""The screening's tiles: how an image is cut, how the real scenes are split for training,
validation and the held-out test, and what each tile's label is.

A tile is 16 x 16 pixels (480 m at Landsat's 30 m): the Landsat scene gives 37 x 39 = 1,443 of
them and the Sentinel-2 scene 40 x 40 = 1,600, enough for a held-out test of a few hundred; a
32-pixel tile would leave 342 Landsat tiles in all. A tile is cloudy when more than 70 % of its
pixels are cloud (CloudScout's rule); only the Landsat scene has cloud, the Sentinel-2 scene adds
clear land, water and bright beaches.

The split is spatial, by columns of tiles, in a period of 14: seven columns train, one is left
out, two validate, one is left out, two are the held-out test, one is left out. A held-out tile
therefore never shares an edge or a corner with a training or a validation tile. Training samples
are 16 x 16 windows at an 8-pixel stride inside the training columns (more samples from the same
pixels, none from outside them); validation and test tiles are the grid's own tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILE = 16
CLOUDY_ABOVE = 0.70  # a tile more than 70 % cloud is to be discarded
PERIOD = 14
ROLE_OF_PHASE = ("train",) * 7 + ("gap", "val", "val", "gap", "test", "test", "gap")
TRAIN_STRIDE = 8
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TileSet:
    """Tiles of one split: images (n, 16, 16, 3) uint8, their cloud fractions, and where they are."""

    images: np.ndarray
    cloud: np.ndarray  # (n,) float, fraction of cloud pixels by the quality band
    scene: np.ndarray  # (n,) str: "landsat8" | "sentinel2"
    origin: np.ndarray  # (n, 2) int: the tile's top-left pixel (row, column) in its scene

    @property
    def cloudy(self) -> np.ndarray:
        return self.cloud > CLOUDY_ABOVE

    def __len__(self) -> int:
        return len(self.cloud)


def grid(height: int, width: int, tile: int = TILE) -> tuple[int, int]:
    """Whole tiles down and across; pixels beyond the last whole tile are not screened."""
    return height // tile, width // tile


def cut(image: np.ndarray, tile: int = TILE) -> np.ndarray:
    """(rows * cols, tile, tile, ...) tiles of `image` in row-major order."""
    rows, cols = grid(image.shape[0], image.shape[1], tile)
    body = image[: rows * tile, : cols * tile]
    tiles = body.reshape(rows, tile, cols, tile, *image.shape[2:]).swapaxes(1, 2)
    return tiles.reshape(rows * cols, tile, tile, *image.shape[2:])


def column_role(col: int) -> str:
    return ROLE_OF_PHASE[col % PERIOD]


def _grid_tiles(rgb, cloud, name, role) -> TileSet:
    rows, cols = grid(*rgb.shape[:2])
    keep = [(r, c) for r in range(rows) for c in range(cols) if column_role(c) == role]
    origin = np.array([(r * TILE, c * TILE) for r, c in keep], dtype=np.int64).reshape(-1, 2)
    return _windows(rgb, cloud, name, origin)


def _train_windows(rgb, cloud, name) -> TileSet:
    rows, cols = grid(*rgb.shape[:2])
    origins = []
    for start in range(0, cols, PERIOD):
        train_cols = [c for c in range(start, min(start + PERIOD, cols)) if column_role(c) == "train"]
        if not train_cols:
            continue
        x0, x1 = train_cols[0] * TILE, (train_cols[-1] + 1) * TILE
        for y in range(0, rows * TILE - TILE + 1, TRAIN_STRIDE):
            for x in range(x0, x1 - TILE + 1, TRAIN_STRIDE):
                origins.append((y, x))
    return _windows(rgb, cloud, name, np.array(origins, dtype=np.int64).reshape(-1, 2))


def _windows(rgb, cloud, name, origin) -> TileSet:
    images = np.stack([rgb[y : y + TILE, x : x + TILE] for y, x in origin]) if len(origin) else None
    if images is None:
        images = np.zeros((0, TILE, TILE, 3), np.uint8)
    fraction = np.array([cloud[y : y + TILE, x : x + TILE].mean() for y, x in origin], dtype=np.float64)
    return TileSet(images, fraction, np.full(len(origin), name), origin)


def _concat(sets: list[TileSet]) -> TileSet:
    return TileSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.cloud for s in sets]),
        np.concatenate([s.scene for s in sets]),
        np.concatenate([s.origin for s in sets]),
    )


def _parts(scenes):
    return [
        ("landsat8", scenes.landsat_rgb, scenes.landsat_cloud),
        ("sentinel2", scenes.sentinel_rgb, np.zeros(scenes.sentinel_rgb.shape[:2], dtype=bool)),
    ]


def tiles_of(scenes, role: str) -> TileSet:
    """The `role` ("val" or "test") grid tiles of both real scenes."""
    return _concat([_grid_tiles(rgb, cloud, name, role) for name, rgb, cloud in _parts(scenes)])


def split(scenes) -> dict[str, TileSet]:
    """The train / val / test tiles of both real scenes (`skyrack.sources.landsat.Scenes`)."""
    out = {"train": _concat([_train_windows(rgb, cloud, name) for name, rgb, cloud in _parts(scenes)])}
    for role in ("val", "test"):
        out[role] = tiles_of(scenes, role)
    return out


def brightness(images: np.ndarray) -> np.ndarray:
    """The reference classifier's score: a tile's mean 8-bit value over its pixels and bands."""
    return images.reshape(len(images), -1).mean(axis=1) / 255.0
