"""The broad areas people say aloud, and how countries are named: one table, no branching.

A country's area is its Natural Earth SUBREGION (the UN geoscheme) translated by
`SUBREGION_AREAS`, unless `COUNTRY_AREAS` overrides it for that country (keyed by ADM0_A3).
Sea and ocean areas are declared next to their polygons in `skyrack.geo.seas`.

Choices, where common speech departs from the UN geoscheme:
- "the Middle East": the Arabian Peninsula, the Levant, Iraq, Iran and Turkey (UN "Western
  Asia" plus Iran), and Egypt, which news and travel speech place there. Cyprus (an EU member)
  is in Southern Europe, continent Europe; Armenia, Azerbaijan and Georgia are "the Caucasus".
- Africa: Angola, Zambia, Zimbabwe, Malawi and Mozambique are
  "Southern Africa" (as in SADC speech), Sudan stays "North Africa" (UN), Madagascar stays
  "East Africa".
- Europe: Germany, Austria, Switzerland, Poland, Czechia, Slovakia and Hungary are
  "Central Europe"; Albania, Bosnia and Herzegovina, Kosovo, North Macedonia, Montenegro and
  Serbia are "the Balkans".
- Mexico is "North America" (UN: Central America); Greenland is "the Arctic".
- Russia is split at 60 E, roughly the Urals: west is "Eastern Europe" (continent Europe), east
  is "Siberia" (continent Asia), so the ground track announces crossing the Urals.
- Australia and New Zealand are "Australasia"; Melanesia is "the Pacific Islands".
"""

from __future__ import annotations

SUBREGION_AREAS: dict[str, str] = {
    "Northern Africa": "North Africa",
    "Western Africa": "West Africa",
    "Middle Africa": "Central Africa",
    "Eastern Africa": "East Africa",
    "Southern Africa": "Southern Africa",
    "Western Asia": "the Middle East",
    "Southern Asia": "South Asia",
    "South-Eastern Asia": "Southeast Asia",
    "Eastern Asia": "East Asia",
    "Central Asia": "Central Asia",
    "Northern Europe": "Northern Europe",
    "Western Europe": "Western Europe",
    "Southern Europe": "Southern Europe",
    "Eastern Europe": "Eastern Europe",
    "Northern America": "North America",
    "Central America": "Central America",
    "Caribbean": "the Caribbean",
    "South America": "South America",
    "Australia and New Zealand": "Australasia",
    "Melanesia": "the Pacific Islands",
    "Micronesia": "the Pacific Islands",
    "Polynesia": "the Pacific Islands",
    "Antarctica": "Antarctica",
    "Seven seas (open ocean)": "the Indian Ocean",
}

# ADM0_A3 -> area, where speech departs from the subregion.
COUNTRY_AREAS: dict[str, str] = {
    "IRN": "the Middle East",
    "EGY": "the Middle East",
    "CYP": "Southern Europe",
    "CYN": "Southern Europe",
    "ARM": "the Caucasus",
    "AZE": "the Caucasus",
    "GEO": "the Caucasus",
    "AGO": "Southern Africa",
    "ZMB": "Southern Africa",
    "ZWE": "Southern Africa",
    "MWI": "Southern Africa",
    "MOZ": "Southern Africa",
    "DEU": "Central Europe",
    "AUT": "Central Europe",
    "CHE": "Central Europe",
    "POL": "Central Europe",
    "CZE": "Central Europe",
    "SVK": "Central Europe",
    "HUN": "Central Europe",
    "ALB": "the Balkans",
    "BIH": "the Balkans",
    "KOS": "the Balkans",
    "MKD": "the Balkans",
    "MNE": "the Balkans",
    "SRB": "the Balkans",
    "MEX": "North America",
    "GRL": "the Arctic",
}

# ADM0_A3 -> continent, where Natural Earth's CONTINENT is not a continent.
COUNTRY_CONTINENTS: dict[str, str | None] = {
    "ATF": None,  # French Southern and Antarctic Lands: "Seven seas (open ocean)"
    "CYP": "Europe",
    "CYN": "Europe",  # Natural Earth: Asia; placed with Southern Europe here
}

# Countries cut into parts with their own continent and area: ADM0_A3 -> parts, each
# (longitude ranges (west, east), continent, area); the parts must cover the country.
COUNTRY_PARTS: dict[str, tuple[tuple[tuple[tuple[float, float], ...], str, str], ...]] = {
    "RUS": (
        (((0.0, 60.0),), "Europe", "Eastern Europe"),
        (((-180.0, 0.0), (60.0, 180.0)), "Asia", "Siberia"),
    ),
}

# Admin-0 features that are not countries (their `country` field is empty).
NOT_COUNTRIES: frozenset[str] = frozenset({"ATA"})

# Display names: Natural Earth's NAME, except where it abbreviates (then NAME_LONG) or is out of
# date; ADM0_A3 -> name.
COUNTRY_NAMES: dict[str, str] = {
    "COG": "Republic of the Congo",
    "SWZ": "Eswatini",
    "MKD": "North Macedonia",
    "CZE": "Czechia",
}

# Names said with "the" ("over the Netherlands", "over the Indian Ocean").
SPOKEN_WITH_THE: frozenset[str] = frozenset(
    {
        "United States of America",
        "Bahamas",
        "Gambia",
        "Netherlands",
        "Philippines",
        "Democratic Republic of the Congo",
        "Republic of the Congo",
        "Central African Republic",
        "Dominican Republic",
        "United Kingdom",
        "United Arab Emirates",
        "Solomon Islands",
        "Falkland Islands",
        "French Southern and Antarctic Lands",
    }
)


def country_name(name: str, name_long: str, adm0_a3: str) -> str:
    if adm0_a3 in COUNTRY_NAMES:
        return COUNTRY_NAMES[adm0_a3]
    return name_long if "." in name else name


def country_area(subregion: str, adm0_a3: str) -> str:
    return COUNTRY_AREAS.get(adm0_a3) or SUBREGION_AREAS.get(subregion, subregion)


def repeats(name: str, other: str) -> bool:
    """Whether saying `other` beside `name` says a place twice: "the Mediterranean" beside
    "Mediterranean Sea", "the Indian Ocean" beside "Indian Ocean" (but not "the North Atlantic"
    beside "Atlantic Ocean"). The dashboard's app.js follows the same rule."""
    a, b = f" {name.removeprefix('the ')} ", f" {other.removeprefix('the ')} "  # whole words only
    return a in b or b in a


def spoken(name: str, is_water: bool) -> str:
    """`name` as said in a sentence: "the Indian Ocean", "the Netherlands", "Chad"."""
    return f"the {name}" if is_water or name in SPOKEN_WITH_THE else name
