"""Spacecraft profiles: a TOML file naming the orbit and the bus figures of one satellite.

A profile is a built-in name (`starcloud-1`, `suncatcher`) or a path. Its `[orbit]` holds a
TLE (`tle = '''...'''`), an OMM record (`omm_json = '''...'''`), a file (`file = "x.tle"`,
relative to the profile), or classical `[orbit.elements]`. Every `[bus]` figure is a table
`{ value = ..., source = "..." }` or `{ value = ..., assumption = "why" }`: a figure with
neither is refused, so no number enters the models without saying where it came from.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from skyrack.errors import UserError
from skyrack.orbit.elements import (
    Satellite,
    from_elements,
    load_elements_file,
    parse_omm_json,
    parse_tle,
    raan_for_ltan,
    sun_synchronous_inclination_deg,
)

DEFAULT_PROFILE = "starcloud-1"


@dataclass(frozen=True)
class Figure:
    value: Any
    source: str | None = None
    assumption: str | None = None

    @property
    def is_assumption(self) -> bool:
        return self.assumption is not None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    path: str
    orbit_source: str
    satellite: Satellite
    bus: dict[str, Figure] = field(default_factory=dict)
    link: dict[str, Figure] = field(default_factory=dict)  # radios and ground network (skyrack.link)

    def value(self, key: str) -> Any:
        """A bus figure's value; a missing one is a clear error naming the profile."""
        try:
            return self.bus[key].value
        except KeyError:
            raise UserError(f"profile {self.name!r} has no bus figure {key!r}") from None

    def with_satellite(self, satellite: Satellite) -> Profile:
        return Profile(
            self.name, self.description, self.path, satellite.source, satellite, self.bus, self.link
        )


def builtin_profiles() -> list[str]:
    folder = resources.files("skyrack") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str | None = None, tle_file: str | None = None) -> Profile:
    """Load a built-in profile by name or a TOML file by path; `tle_file` overrides its orbit."""
    name_or_path = name_or_path or DEFAULT_PROFILE
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"profile file not found: {path}")
        text, where = _read(path), str(path)
    else:
        key = name_or_path.lower()
        if key not in builtin_profiles():
            raise UserError(f"unknown profile {name_or_path!r}; built in: {', '.join(builtin_profiles())}")
        resource = resources.files("skyrack") / "profiles" / f"{key}.toml"
        text, where, path = resource.read_text(encoding="utf-8"), f"profile {key}", Path(str(resource))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML ({exc})") from None
    name = str(data.get("name") or path.stem)
    orbit = data.get("orbit")
    if not isinstance(orbit, dict):
        raise UserError(f"{where}: missing [orbit] table")
    satellite = load_elements_file(tle_file) if tle_file else _satellite(orbit, name, where, path.parent)
    bus = {key: parse_figure(key, raw, where) for key, raw in (data.get("bus") or {}).items()}
    link = {key: parse_figure(key, raw, where) for key, raw in (data.get("link") or {}).items()}
    return Profile(
        name=name,
        description=str(data.get("description", "")),
        path=str(path),
        orbit_source=satellite.source if tle_file else str(orbit.get("source", where)),
        satellite=satellite,
        bus=bus,
        link=link,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read profile {path}: {exc}") from None


def parse_figure(key: str, raw: Any, where: str) -> Figure:
    if not isinstance(raw, dict) or "value" not in raw:
        raise UserError(f"{where}: figure {key!r} must be a table with 'value' and 'source' or 'assumption'")
    if not (raw.get("source") or raw.get("assumption")):
        raise UserError(f"{where}: figure {key!r} says neither its source nor that it is an assumption")
    return Figure(raw["value"], raw.get("source"), raw.get("assumption"))


def _satellite(orbit: dict, name: str, where: str, base: Path) -> Satellite:
    if "tle" in orbit:
        return parse_tle(orbit["tle"], source=f"{where} [orbit] tle")
    if "omm_json" in orbit:
        return parse_omm_json(orbit["omm_json"], source=f"{where} [orbit] omm_json")
    if "file" in orbit:
        return load_elements_file(base / orbit["file"])
    if "elements" in orbit:
        return _from_elements_table(orbit["elements"], name, where)
    raise UserError(f"{where}: [orbit] needs one of tle, omm_json, file or [orbit.elements]")


def _from_elements_table(el: dict, name: str, where: str) -> Satellite:
    try:
        epoch = el["epoch"]
        if isinstance(epoch, str):
            epoch = datetime.fromisoformat(epoch.replace("Z", "+00:00"))
        if epoch.tzinfo is None:
            epoch = epoch.replace(tzinfo=UTC)
        altitude = float(el["altitude_km"])
        ecc = float(el.get("eccentricity", 0.0))
        incl = el["inclination_deg"]
        incl = sun_synchronous_inclination_deg(altitude, ecc) if incl == "sun-synchronous" else float(incl)
        if "ltan_hours" in el:
            raan = raan_for_ltan(epoch, float(el["ltan_hours"]))
        else:
            raan = float(el["raan_deg"])
        return from_elements(
            name,
            epoch,
            altitude_km=altitude,
            inclination_deg=incl,
            raan_deg=raan,
            eccentricity=ecc,
            arg_perigee_deg=float(el.get("arg_perigee_deg", 0.0)),
            mean_anomaly_deg=float(el.get("mean_anomaly_deg", 0.0)),
            bstar=float(el.get("bstar", 0.0)),
            source=f"{where} [orbit.elements]",
        )
    except KeyError as exc:
        raise UserError(f"{where}: [orbit.elements] is missing {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where}: bad value in [orbit.elements] ({exc})") from None
