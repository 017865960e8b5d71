"""Country outlines for drawing a world map (the dashboard's and the report's): the region
index's own Natural Earth polygons, simplified to what a map a thousand pixels wide can show."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=4)
def country_outlines(tolerance_deg: float) -> tuple[tuple[object, object], ...]:
    """(country record, simplified geometry) for every country, read and simplified once per
    tolerance and process."""
    import shapely

    from skyrack.sources.geography import read_countries

    return tuple(
        (record, shapely.simplify(record.geometry, tolerance_deg, preserve_topology=True))
        for record in read_countries()
    )
