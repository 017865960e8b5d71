"""Quantities as people write them: `5GW`, `40 MW`, `$200/kg`, `$8.2M`, `10y`, `30%`, `20C`.

`parse(text, kind)` returns a float in the planner's base unit for that kind (W, years, kg,
USD, $/kg, $/W, $/kWh, K, ...). A bare number is taken in the base unit. Anything else, a unit
of the wrong kind or a value outside physical bounds, is a `UserError` naming the input.
"""

from __future__ import annotations

import math
import re

from skyrack.errors import UserError

_NUMBER = re.compile(
    r"^\s*(?P<dollar>\$)?\s*(?P<num>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*"
    r"(?:(?P<mult>k|K|M|B|bn|T)(?![a-zA-Z]))?\s*(?P<unit>.*?)\s*$"
)
_MONEY_MULT = {None: 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "bn": 1e9, "T": 1e12}

# kind -> (base unit shown to people, {accepted unit spelling (lowercase, no spaces): factor to base})
KINDS: dict[str, tuple[str, dict[str, float]]] = {
    "power": ("W", {"w": 1.0, "kw": 1e3, "mw": 1e6, "gw": 1e9, "tw": 1e12}),
    "years": ("years", {"y": 1.0, "yr": 1.0, "yrs": 1.0, "year": 1.0, "years": 1.0}),
    "seconds": ("s", {"s": 1.0, "min": 60.0, "h": 3600.0}),
    "mass": ("kg", {"kg": 1.0, "t": 1e3, "tonne": 1e3, "tonnes": 1e3}),
    "usd": ("$", {"": 1.0, "usd": 1.0}),
    "usd_per_year": ("$/yr", {"/yr": 1.0, "/y": 1.0, "/year": 1.0, "peryear": 1.0}),
    "usd_per_kg": ("$/kg", {"/kg": 1.0, "/t": 1e-3}),
    "usd_per_w": ("$/W", {"/w": 1.0, "/kw": 1e-3, "/mw": 1e-6}),
    "usd_per_kwh": ("$/kWh", {"/kwh": 1.0, "/mwh": 1e-3, "/wh": 1e3}),
    "usd_per_mwh": ("$/MWh", {"/mwh": 1.0, "/kwh": 1e3}),
    "usd_per_m2": ("$/m2", {"/m2": 1.0, "/m^2": 1.0}),
    "usd_per_kg_kind": ("$/kg", {"/kg": 1.0}),
    "w_per_kg": ("W/kg", {"w/kg": 1.0, "kw/kg": 1e3}),
    "wh_per_kg": ("Wh/kg", {"wh/kg": 1.0, "kwh/kg": 1e3}),
    "kg_per_kw": ("kg/kW", {"kg/kw": 1.0, "kg/w": 1e3, "kg/mw": 1e-3}),
    "kg_per_m2": ("kg/m2", {"kg/m2": 1.0, "kg/m^2": 1.0}),
    "w_per_m2": ("W/m2", {"w/m2": 1.0, "w/m^2": 1.0}),
    "fraction": ("", {"": 1.0, "%": 0.01}),
    "ratio": ("", {"": 1.0, "x": 1.0}),
    "temperature": ("K", {"k": 1.0}),
    "count": ("", {"": 1.0}),
}
MONEY_KINDS = {k for k in KINDS if k.startswith("usd")}


def parse(text: str | float | int, kind: str, name: str = "value") -> float:
    """A quantity of `kind` in its base unit. Numbers pass through; strings carry their unit."""
    if kind not in KINDS:
        raise ValueError(f"unknown quantity kind {kind!r}")
    if isinstance(text, bool):
        raise UserError(f"{name}: expected a number, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        value = _parse_text(str(text), kind, name)
    if not math.isfinite(value):
        raise UserError(f"{name}: {text!r} is not a finite number")
    return value


def _parse_text(text: str, kind: str, name: str) -> float:
    m = _NUMBER.match(text)
    if not m:
        raise UserError(f"{name}: cannot read {text!r} as a number with a unit (e.g. {example(kind)})")
    value = float(m["num"])
    mult, unit = m["mult"], m["unit"].replace(" ", "").lower()
    base, units = KINDS[kind]
    if kind == "temperature" and unit in ("c", "degc", "°c"):
        return value + 273.15
    if kind in MONEY_KINDS:
        return value * _MONEY_MULT[mult] * _lookup(units, unit, text, kind, name)
    if mult:  # not money: a lone letter read as a multiplier is the unit ("320K")
        unit = mult.lower() + unit
    if unit.startswith("$"):
        raise UserError(f"{name}: {text!r} is money, expected {base or 'a plain number'}")
    return value * _lookup(units, unit, text, kind, name)


def _lookup(units: dict[str, float], unit: str, text: str, kind: str, name: str) -> float:
    if unit == "":  # a bare number is in the base unit
        return 1.0
    if unit in units:
        return units[unit]
    base = KINDS[kind][0]
    raise UserError(
        f"{name}: unit in {text!r} does not fit; expected {base or 'a plain number'} (e.g. {example(kind)})"
    )


def example(kind: str) -> str:
    return {
        "power": "5GW, 40 MW",
        "years": "10y",
        "seconds": "1200 s",
        "mass": "100 t",
        "usd": "$8.2M",
        "usd_per_year": "$10M/yr",
        "usd_per_kg": "$200/kg",
        "usd_per_w": "$0.05/W",
        "usd_per_kwh": "$0.04/kWh",
        "usd_per_mwh": "$3/MWh",
        "usd_per_m2": "$500/m2",
        "w_per_kg": "150 W/kg",
        "wh_per_kg": "200 Wh/kg",
        "kg_per_kw": "10 kg/kW",
        "kg_per_m2": "5 kg/m2",
        "w_per_m2": "1361 W/m2",
        "fraction": "0.3 or 30%",
        "ratio": "1.2",
        "temperature": "300K or 27C",
        "count": "3",
    }.get(kind, "a number")


def format_power(watts: float) -> str:
    for unit, scale in (("TW", 1e12), ("GW", 1e9), ("MW", 1e6), ("kW", 1e3)):
        if abs(watts) >= scale:
            return f"{watts / scale:.3g} {unit}"
    return f"{watts:.3g} W"


def format_money(usd: float) -> str:
    sign = "-" if usd < 0 else ""
    usd = abs(usd)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if usd >= scale:
            return f"{sign}${usd / scale:.3g}{unit}"
    return f"{sign}${usd:.3g}"


def format_mass(kg: float) -> str:
    if kg >= 1e6:
        return f"{kg / 1e6:.3g} kt"
    if kg >= 1e3:
        return f"{kg / 1e3:.3g} t"
    return f"{kg:.3g} kg"


def format_area(m2: float) -> str:
    return f"{m2 / 1e6:.3g} km2" if m2 >= 1e5 else f"{m2:,.0f} m2"
