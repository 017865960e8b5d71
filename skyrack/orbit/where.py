"""Where the satellite is at one instant, as data: position, sunlight, the region beneath, the
regions the ground track reaches next and the next change of light. `skyrack where` prints it;
the assistant's orbit tools read it."""

from __future__ import annotations

import numpy as np

from skyrack.orbit.beneath import spoken_region, upcoming_areas
from skyrack.orbit.timebase import iso
from skyrack.orbit.twin import OrbitTwin


def where_report(twin: OrbitTwin, seconds: float, index) -> dict:
    """Everything `where` says, as data; the human line is rendered from it."""
    state = twin.state(np.array([seconds]))
    region = index.describe(float(state.lat_deg[0]), float(state.lon_deg[0]))
    arrivals = upcoming_areas(twin, index, seconds)
    changes = twin.eclipses(seconds, seconds + 1.05 * twin.period_s)
    fraction = float(state.sunlit[0])
    return {
        "satellite": twin.satellite.name,
        "time": iso(seconds),
        "lat_deg": round(float(state.lat_deg[0]), 4),
        "lon_deg": round(float(state.lon_deg[0]), 4),
        "alt_km": round(float(state.alt_km[0]), 2),
        "speed_km_s": round(float(state.speed_km_s[0]), 3),
        "sunlit": fraction >= 0.5,
        "sunlit_fraction": round(fraction, 4),
        "beta_deg": round(float(state.beta_deg[0]), 2),
        "in_saa": bool(state.in_saa[0]),
        "region": {**region.as_dict(), "spoken": spoken_region(region)},
        "next": [
            {
                "region": a.spoken(),
                "area": a.area,
                "detail": a.detail,
                "eta_s": round(a.eta_s),
                "time": iso(a.seconds),
            }
            for a in arrivals
        ],
        "next_light_change": (
            {
                "event": "eclipse exit" if changes[0].rising else "eclipse entry",
                "eta_s": round(changes[0].seconds - seconds),
                "time": iso(changes[0].seconds),
            }
            if changes
            else None
        ),
    }
