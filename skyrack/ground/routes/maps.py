"""The map: country outlines, ground stations, the ground track and passes over a station."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from skyrack.errors import UserError
from skyrack.ground import sky
from skyrack.ground.routes import GroundDep, finite
from skyrack.orbit.stations import resolve_station

MAX_TRACK_S = 2 * 86400.0
MAX_PASS_HOURS = 72.0

router = APIRouter()


@router.get("/api/map/countries", tags=["map"], summary="simplified country outlines (GeoJSON)")
def countries():
    return Response(
        sky.countries_geojson(),
        media_type="application/geo+json",
        headers={"cache-control": "public, max-age=86400"},
    )


@router.get("/api/stations", tags=["map"], summary="built-in ground stations")
def stations():
    return {"stations": sky.stations()}


@router.get("/api/track", tags=["map"], summary="ground track around a time, and the subsolar point")
def track(
    ground: GroundDep,
    at: Annotated[float | None, Query()] = None,
    before_s: Annotated[float, Query(ge=0, le=MAX_TRACK_S)] = 3000.0,
    after_s: Annotated[float, Query(ge=0, le=MAX_TRACK_S)] = 6000.0,
    step_s: Annotated[float, Query(ge=5, le=3600)] = 30.0,
):
    at = finite("at", at)
    at = at if at is not None else ground.now()
    if at is None:
        raise HTTPException(409, "the mission has no frame yet")
    if (before_s + after_s) / step_s > 20000:
        raise HTTPException(422, "too many points; use a larger step_s")
    lat, lon = sky.subsolar_point(at)
    return {
        "at": at,
        "points": sky.ground_track(ground.twin(), at - before_s, at + after_s, step_s),
        "subsolar": {"lat_deg": lat, "lon_deg": lon},
    }


@router.get("/api/passes", tags=["map"], summary="passes over a ground station")
def passes(
    ground: GroundDep,
    station: Annotated[str, Query(min_length=1, max_length=64, description="built-in id or LAT,LON")],
    hours: Annotated[float, Query(gt=0, le=MAX_PASS_HOURS)] = 24.0,
    min_elevation: Annotated[float, Query(gt=-90, lt=90)] = 10.0,
    at: Annotated[float | None, Query()] = None,
):
    try:
        where = resolve_station(station)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
    at = finite("at", at)
    at = at if at is not None else ground.now()
    if at is None:
        raise HTTPException(409, "the mission has no frame yet")
    return {
        "station": sky.station_dict(where),
        "from": at,
        "hours": hours,
        "min_elevation_deg": min_elevation,
        "passes": sky.passes(ground.twin(), where, at, hours, min_elevation),
    }
