"""What is beneath a point: country, continent, sea or ocean, and the broad area, offline.

    from skyrack.geo.regions import RegionIndex
    index = RegionIndex.load()                 # cached after the first build (about 2 s)
    codes = index.lookup(lat_deg, lon_deg)     # vectorized: arrays in, int32 codes out
    index.region(int(codes[0]))                # -> Region(name=..., country=..., area=...)
    index.describe(25.3, 51.2).line            # 'Qatar, Asia (the Middle East)'

How it works. Land comes from Natural Earth 1:110m Admin-0 country polygons
(`skyrack.sources.geography`), water from the project's table of seas and oceans
(`skyrack.geo.seas`), broad areas from `skyrack.geo.areas`. The index is a 0.1 degree global
raster of region codes (3600 x 1800 cells) plus a flag for the cells a country boundary passes
through; a point in a flagged cell (about 1 in 70 on a ground track) is tested exactly against
the country polygons with shapely, every other point is named by one array lookup. The result
is therefore exact with respect to the 1:110m polygons, and sea limits are good to the grid
(about 11 km), which is finer than the sea polygons themselves.

Codes: one per (place, broad area) pair, numbered in a fixed order (countries in file order,
then seas in priority order, then oceans); stable for a given data version and tables, and
distinct for distinct countries and seas, so `np.diff(codes) != 0` finds every change of what
is beneath a ground track. A country split into parts with different areas (Russia at the
Urals) and an ocean split at the equator (the North and South Atlantic and Pacific) have one
code per part. `area_code(codes)` maps codes to broad-area codes for "entering West Africa".

Limitations: 1:110m has no polygons for states smaller than about 10 km across (Singapore,
Malta, Andorra, Monaco, Bahrain, ...), which are named after the country or sea around them;
coastlines are generalized by a few kilometres; sea limits are approximations of IHO S-23 drawn
for this project.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.affinity import translate
from shapely.geometry import Polygon, box

from skyrack.geo import areas as area_table
from skyrack.geo import seas as sea_table
from skyrack.geo.raster import Grid, mark_boundaries, paint, wrap_lon
from skyrack.sources import geography
from skyrack.sources.cache import cache_dir
from skyrack.storage import atomic_write_bytes, atomic_write_text, sha256_file

FORMAT = 2
RESOLUTION_DEG = 0.1


@dataclass(frozen=True)
class Region:
    """One named place beneath the satellite.

    name: the country or the sea/ocean ("Chad", "Mediterranean Sea", "Atlantic Ocean").
    country: the country on land, None at sea (and for Antarctica).
    continent: on land ("Africa"; "Europe" or "Asia" for the two parts of Russia), else None.
    ocean: the sea or ocean at sea, in normal capitalization, else None.
    area: the broad region said aloud ("the Middle East", "West Africa", "the North Atlantic").
    iso_a2: ISO 3166-1 alpha-2 on land where Natural Earth has one.
    """

    code: int
    name: str
    country: str | None
    continent: str | None
    ocean: str | None
    area: str
    iso_a2: str | None = None

    @property
    def is_water(self) -> bool:
        return self.ocean is not None

    @property
    def spoken(self) -> str:
        """The name in a sentence: "the Indian Ocean", "the Netherlands", "Chad"."""
        return area_table.spoken(self.name, self.is_water)

    @property
    def line(self) -> str:
        """One human line: 'Chad, Africa (Central Africa)', 'Atlantic Ocean (the North Atlantic)'."""
        text = self.name
        if self.continent and self.continent != self.name:
            text += f", {self.continent}"
        if not area_table.repeats(self.name, self.area) and self.area != self.continent:
            text += f" ({self.area})"
        return text

    def as_dict(self) -> dict:
        return {**asdict(self), "spoken": self.spoken}


def _wrapped(vertices) -> object:
    """A polygon given with longitudes possibly beyond 180, cut and folded into [-180, 180]."""
    poly = Polygon(vertices)
    inside = poly.intersection(box(-180, -90, 180, 90))
    beyond = poly.intersection(box(180, -90, 540, 90))
    return inside if beyond.is_empty else shapely.union(inside, translate(beyond, xoff=-360.0))


def _region_table(records) -> tuple[list[Region], list, list[Region], list]:
    """(land regions, their geometries, water regions, their geometries) in code order."""
    land, land_geoms = [], []
    for rec in records:
        name = area_table.country_name(rec.name, rec.name_long, rec.iso_a3)
        continent = area_table.COUNTRY_CONTINENTS.get(rec.iso_a3, rec.continent)
        country = None if rec.iso_a3 in area_table.NOT_COUNTRIES else name
        iso_a2 = rec.iso_a2 if rec.iso_a2 not in ("-99", "") else None
        parts = area_table.COUNTRY_PARTS.get(rec.iso_a3)
        if parts is None:
            parts = ((((-180.0, 180.0),), continent, area_table.country_area(rec.subregion, rec.iso_a3)),)
        for ranges, part_continent, area in parts:
            cut = shapely.union_all([box(west, -90, east, 90) for west, east in ranges])
            geom = rec.geometry.intersection(cut) if len(parts) > 1 else rec.geometry
            geom = shapely.make_valid(geom)
            geom = shapely.union_all(
                [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
            )
            if geom.is_empty:
                continue
            land.append(Region(len(land), name, country, part_continent, None, area, iso_a2))
            land_geoms.append(geom)

    water_specs = [(n, a, _wrapped(v)) for n, a, v in sea_table.SEAS]
    water_specs.append(
        (sea_table.SOUTHERN_OCEAN[0], sea_table.SOUTHERN_OCEAN[1], Polygon(sea_table.SOUTHERN_OCEAN[2]))
    )
    water_specs.append(
        (sea_table.ARCTIC_OCEAN[0], sea_table.ARCTIC_OCEAN[1], Polygon(sea_table.ARCTIC_OCEAN[2]))
    )
    water_specs.append(
        (sea_table.INDIAN_OCEAN[0], sea_table.INDIAN_OCEAN[1], Polygon(sea_table.INDIAN_OCEAN[2]))
    )
    north, south = box(-180, 0, 180, 90), box(-180, -90, 180, 0)
    atlantic = Polygon(sea_table.ATLANTIC_OCEAN[2])
    for ocean, whole in (("Atlantic Ocean", atlantic), (sea_table.PACIFIC_OCEAN, box(-180, -90, 180, 90))):
        n_area, s_area = sea_table.HEMISPHERE_AREAS[ocean]
        water_specs.append((ocean, n_area, whole.intersection(north)))
        water_specs.append((ocean, s_area, whole.intersection(south)))
    water, water_geoms = [], []
    for name, area, geom in water_specs:
        water.append(Region(len(land) + len(water), name, None, None, name, area))
        water_geoms.append(geom)
    return land, land_geoms, water, water_geoms


def _tables_digest() -> str:
    text = repr(
        (
            FORMAT,
            RESOLUTION_DEG,
            sea_table.SEAS,
            sea_table.SOUTHERN_OCEAN,
            sea_table.ARCTIC_OCEAN,
            sea_table.INDIAN_OCEAN,
            sea_table.ATLANTIC_OCEAN,
            sea_table.HEMISPHERE_AREAS,
            area_table.SUBREGION_AREAS,
            area_table.COUNTRY_AREAS,
            area_table.COUNTRY_CONTINENTS,
            area_table.COUNTRY_PARTS,
            area_table.COUNTRY_NAMES,
            sorted(area_table.NOT_COUNTRIES),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


class RegionIndex:
    """Region codes for any latitude/longitude, vectorized; see the module docstring."""

    def __init__(
        self,
        regions: list[Region],
        codes_raster: np.ndarray,
        border: np.ndarray,
        land_geometries: list,
        res_deg: float = RESOLUTION_DEG,
    ):
        self.grid = Grid(res_deg)
        if codes_raster.shape != self.grid.shape or border.shape != self.grid.shape:
            raise ValueError("raster shape does not match the grid")
        self.regions = regions
        self._codes = codes_raster
        self._border = border
        self._land_geoms = land_geometries
        self._tree = shapely.STRtree(land_geometries)
        self.areas = sorted({r.area for r in regions})
        area_id = {a: i for i, a in enumerate(self.areas)}
        self._area_of_code = np.array([area_id[r.area] for r in regions], dtype=np.int32)

    # -- building and caching -------------------------------------------------------------

    @classmethod
    def build(cls, records=None, res_deg: float = RESOLUTION_DEG) -> RegionIndex:
        """Build from country records (default: the Natural Earth source), no cache involved."""
        records = geography.read_countries() if records is None else records
        land, land_geoms, water, water_geoms = _region_table(records)
        grid = Grid(res_deg)
        raster = np.zeros(grid.shape, dtype=np.uint16)
        paint(grid, raster, water_geoms, [r.code for r in water])
        land_raster = np.full(grid.shape, -1, dtype=np.int32)
        paint(grid, land_raster, land_geoms, [r.code for r in land])
        border = np.zeros(grid.shape, dtype=bool)
        mark_boundaries(grid, land_geoms, border)
        # Cells a coast or border crosses keep the water code: lookup tests them exactly and
        # falls back to the water beneath when no country contains the point.
        np.copyto(raster, land_raster.astype(np.uint16), where=(land_raster >= 0) & ~border)
        return cls(land + water, raster, border, land_geoms, res_deg)

    @classmethod
    def load(cls, folder: Path | None = None) -> RegionIndex:
        """The cached index for the current source data and tables, built on first use.

        The cache is two files keyed by the source shapefile's sha256 and a digest of the
        tables: a JSON table of regions (holding the sha256 of the arrays) and an .npz of arrays.
        Anything missing, mismatched or unreadable is rebuilt, never trusted.
        """
        _, source_digest = geography.countries_shapefile()
        key = hashlib.sha256(f"{source_digest}:{_tables_digest()}".encode()).hexdigest()
        folder = folder or cache_dir("geography")
        meta_path = folder / f"regions-{key[:16]}.json"
        npz_path = folder / f"regions-{key[:16]}.npz"
        index = cls._read(meta_path, npz_path, key)
        if index is None:
            index = cls.build()
            index._write(meta_path, npz_path, key)
        return index

    @classmethod
    def _read(cls, meta_path: Path, npz_path: Path, key: str) -> RegionIndex | None:
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key") != key or meta.get("format") != FORMAT:
                return None
            if sha256_file(npz_path) != meta["npz_sha256"]:
                return None
            with np.load(npz_path, allow_pickle=False) as arrays:
                raster = arrays["codes"]
                shape = tuple(arrays["shape"])
                border = (
                    np.unpackbits(arrays["border"], count=shape[0] * shape[1]).reshape(shape).astype(bool)
                )
                blob, offsets = arrays["wkb"].tobytes(), arrays["wkb_offsets"]
            geoms = list(shapely.from_wkb([blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])]))
            regions = [Region(**r) for r in meta["regions"]]
            if len(geoms) != sum(1 for r in regions if not r.is_water):
                return None
            return cls(regions, raster, border, geoms, meta["res_deg"])
        except (OSError, ValueError, KeyError, TypeError, shapely.errors.GEOSException):
            return None

    def _write(self, meta_path: Path, npz_path: Path, key: str) -> None:
        wkbs = [shapely.to_wkb(g) for g in self._land_geoms]
        offsets = np.concatenate([[0], np.cumsum([len(w) for w in wkbs])]).astype(np.int64)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            codes=self._codes,
            shape=np.array(self._codes.shape),
            border=np.packbits(self._border.ravel()),
            wkb=np.frombuffer(b"".join(wkbs), dtype=np.uint8),
            wkb_offsets=offsets,
        )
        atomic_write_bytes(npz_path, buffer.getvalue())
        meta = {
            "format": FORMAT,
            "key": key,
            "res_deg": self.grid.res,
            "npz_sha256": sha256_file(npz_path),
            "source": f"Natural Earth {geography.DATASET} {geography.DATASET_VERSION}",
            "regions": [asdict(r) for r in self.regions],
        }
        atomic_write_text(meta_path, json.dumps(meta, indent=1, ensure_ascii=False))

    # -- lookup ---------------------------------------------------------------------------

    def lookup(self, lat_deg, lon_deg) -> np.ndarray:
        """Region codes (int32, broadcast shape of the inputs) for latitudes/longitudes in degrees.

        Latitude must be finite and in [-90, 90]; any finite longitude is wrapped.
        """
        lat, lon = np.broadcast_arrays(
            np.asarray(lat_deg, dtype=np.float64), np.asarray(lon_deg, dtype=np.float64)
        )
        if not (np.all(np.abs(lat) <= 90.0) and np.all(np.isfinite(lon))):
            raise ValueError("latitudes must be in [-90, 90] and longitudes finite")
        shape = lat.shape
        lat, lon = lat.ravel(), wrap_lon(lon.ravel())
        row, col = self.grid.cells(lat, lon)
        codes = self._codes[row, col].astype(np.int32)
        edge = np.flatnonzero(self._border[row, col])
        if edge.size:
            points = shapely.points(lon[edge], lat[edge])
            which, hit = self._tree.query(points, predicate="intersects")
            best = np.full(edge.size, np.iinfo(np.int32).max, dtype=np.int64)
            np.minimum.at(best, which, hit)  # on a shared border, the first country wins
            found = best < np.iinfo(np.int32).max
            codes[edge[found]] = best[found]  # land codes are the tree indices
        return codes.reshape(shape)

    def region(self, code: int) -> Region:
        return self.regions[code]

    def describe(self, lat_deg: float, lon_deg: float) -> Region:
        return self.regions[int(self.lookup(lat_deg, lon_deg))]

    def area_code(self, codes) -> np.ndarray:
        """Broad-area codes (indices into `self.areas`) for region codes, vectorized."""
        return self._area_of_code[np.asarray(codes)]

    def area_name(self, area_code: int) -> str:
        return self.areas[area_code]
