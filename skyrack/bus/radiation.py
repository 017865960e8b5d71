"""Radiation: memory upsets and ionizing dose along the orbit.

Model and its assumptions:
- The profile's `seu_per_bit_day` and `dose_rad_per_year` are orbit averages: that is what the
  sources give (Alsat-1's 4e-7..1e-6 upsets/bit/day is a mission average; Suncatcher's
  ~150 rad(Si)/yr an annual dose). Flight data show the South Atlantic Anomaly dominates the
  counts, so the rate is shaped along the orbit: `saa_multiplier` times higher inside the SAA
  than outside, normalized so that its mean over a day of this orbit equals the profile's
  average. A day's expected upsets therefore stay what the source says, and inside/outside
  the SAA the rates differ by exactly the multiplier.
- The same shape and multiplier are used for dose (trapped protons give both), an assumption.
- Optionally (`graded=True`) the enhancement grows from the SAA's edge inward: 1 at its
  boundary, the full multiplier from half-way to its centre on (`saa_depth` <= 0.5).
- Upsets are for the GPU memory only: `gpu_memory_bytes` x 8 bits, all exposed.
"""

from __future__ import annotations

import numpy as np

from skyrack.bus.spec import BusSpec
from skyrack.orbit.saa import saa_depth

SECONDS_PER_DAY = 86400.0
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY


def saa_factor(lat_deg, lon_deg, multiplier: float, graded: bool = False) -> np.ndarray:
    """Relative rate at each position: `multiplier` inside the SAA, 1 outside."""
    depth = saa_depth(lat_deg, lon_deg)
    if graded:
        weight = np.clip(2.0 * (1.0 - depth), 0.0, 1.0)
    else:
        weight = (depth <= 1.0).astype(float)
    return 1.0 + (multiplier - 1.0) * weight


class RadiationModel:
    """Upset rates and dose along an orbit. `mean_factor` is the day-average of `saa_factor`
    for this orbit; build with `for_orbit` to have it measured from the twin."""

    def __init__(self, spec: BusSpec, mean_factor: float = 1.0, graded: bool = False):
        self.spec = spec
        self.mean_factor = float(mean_factor)
        self.graded = graded

    @classmethod
    def for_orbit(
        cls, spec: BusSpec, twin, start_s: float, graded: bool = False, step_s: float = 30.0
    ) -> RadiationModel:
        """Measure the SAA's share of a day of this orbit from `start_s`."""
        from skyrack.orbit import frames

        seconds = start_s + np.arange(0.0, SECONDS_PER_DAY, step_s)
        lat, lon, _ = frames.ecef_to_geodetic(twin.ecef(seconds))
        mean = float(np.mean(saa_factor(lat, lon, spec.saa_multiplier, graded)))
        return cls(spec, mean, graded)

    def factor(self, lat_deg, lon_deg) -> np.ndarray:
        return saa_factor(lat_deg, lon_deg, self.spec.saa_multiplier, self.graded) / self.mean_factor

    def upset_rate_per_bit_day(self, lat_deg, lon_deg) -> np.ndarray:
        """Single-event upsets per bit per day at these positions."""
        return self.spec.seu_per_bit_day * self.factor(lat_deg, lon_deg)

    def gpu_upsets_per_s(self, lat_deg, lon_deg) -> np.ndarray:
        """Expected upsets per second in the whole GPU memory."""
        return self.upset_rate_per_bit_day(lat_deg, lon_deg) * self.spec.gpu_bits / SECONDS_PER_DAY

    def dose_rate_rad_per_s(self, lat_deg, lon_deg) -> np.ndarray:
        return self.spec.dose_rad_per_year / SECONDS_PER_YEAR * self.factor(lat_deg, lon_deg)

    def accumulated_dose_rad(self, seconds, lat_deg, lon_deg, initial_rad: float = 0.0) -> np.ndarray:
        """Dose accumulated since `seconds[0]` (rad(Si)), each sample's rate held over the
        interval that follows it, as the simulation's other integrations do."""
        rate = self.dose_rate_rad_per_s(lat_deg, lon_deg)
        dt = np.diff(np.asarray(seconds, dtype=float))
        return initial_rad + np.concatenate(([0.0], np.cumsum(rate[:-1] * dt)))


def upsets_per_step(
    gpu_upsets_per_s: float, seconds: float, state_bits: float, gpu_bits: float, stress: float = 1.0
) -> float:
    """Expected upsets in a job's state over `seconds` of exposure: the whole GPU memory's rate
    times the share of that memory the state occupies (`state_bits / gpu_bits`), times `stress`."""
    return gpu_upsets_per_s * seconds * stress * state_bits / gpu_bits


def expected_daily_upsets(spec: BusSpec) -> float:
    """Orbit-average upsets a day in the GPU memory: bits x upsets/bit/day."""
    return spec.gpu_bits * spec.seu_per_bit_day
