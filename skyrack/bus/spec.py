"""The bus figures of one profile, read once into plain floats for the models' inner loops.

Every number here comes from the profile's `[bus]` table, where it is sourced or labelled an
assumption; a missing figure is a one-line error naming the profile and the figure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

from skyrack.errors import UserError
from skyrack.profile import Profile


@dataclass(frozen=True)
class BusSpec:
    # solar array
    array_area_m2: float
    cell_efficiency: float
    array_pointing_factor: float
    array_degradation_per_year: float
    launch_s: float  # POSIX seconds; the array has aged since then
    # battery
    battery_capacity_wh: float
    battery_charge_efficiency: float
    battery_discharge_efficiency: float
    battery_max_charge_w: float  # bus-side power the battery accepts at most
    battery_max_discharge_w: float  # bus-side power the battery delivers at most
    battery_reserve_fraction: float
    # loads
    bus_baseline_power_w: float
    gpu_max_power_w: float
    gpu_min_power_w: float
    gpu_idle_power_w: float
    gpu_power_speed_exponent: float
    # thermal
    gpu_temp_limit_c: float
    gpu_min_operating_temp_c: float  # the governor never runs the GPU colder
    survival_temp_c: float  # the survival heater holds the GPU's node at least this warm
    heater_survival_w: float  # rated power of the survival heater
    heater_operational_w: float  # rated power of the operational heater, beside it
    gpu_thermal_resistance_k_per_w: float
    radiator_area_m2: float
    radiator_emissivity: float
    radiator_absorptivity: float
    thermal_mass_j_per_k: float
    # radiation
    gpu_memory_bytes: float
    seu_per_bit_day: float
    saa_multiplier: float
    dose_rad_per_year: float

    @classmethod
    def from_profile(cls, profile: Profile) -> BusSpec:
        values = {}
        for f in fields(cls):
            key = "launch_utc" if f.name == "launch_s" else f.name
            raw = profile.value(key)
            try:
                values[f.name] = _seconds(raw) if key == "launch_utc" else float(raw)
            except (TypeError, ValueError):
                raise UserError(
                    f"profile {profile.name!r}: bus figure {key!r} must be a number, got {raw!r}"
                ) from None
        spec = cls(**values)
        spec.check(profile.name)
        return spec

    def check(self, name: str) -> None:
        """Refuse figures the models cannot work with, in one line."""
        positive = (
            "array_area_m2",
            "cell_efficiency",
            "battery_capacity_wh",
            "battery_charge_efficiency",
            "battery_discharge_efficiency",
            "battery_max_charge_w",
            "battery_max_discharge_w",
            "gpu_max_power_w",
            "gpu_min_power_w",
            "radiator_area_m2",
            "radiator_emissivity",
            "thermal_mass_j_per_k",
            "gpu_power_speed_exponent",
        )
        for key in positive:
            if not getattr(self, key) > 0:
                raise UserError(
                    f"profile {name!r}: bus figure {key!r} must be positive, got {getattr(self, key)}"
                )
        for key in (
            "cell_efficiency",
            "battery_charge_efficiency",
            "battery_discharge_efficiency",
            "array_pointing_factor",
            "radiator_emissivity",
            "radiator_absorptivity",
        ):
            if not 0 <= getattr(self, key) <= 1:
                raise UserError(
                    f"profile {name!r}: bus figure {key!r} must lie in 0..1, got {getattr(self, key)}"
                )
        if not 0 <= self.battery_reserve_fraction < 1:
            raise UserError(
                f"profile {name!r}: battery_reserve_fraction must lie in 0..1, "
                f"got {self.battery_reserve_fraction}"
            )
        for key in ("heater_survival_w", "heater_operational_w"):
            if not getattr(self, key) >= 0:
                raise UserError(
                    f"profile {name!r}: bus figure {key!r} must be >= 0, got {getattr(self, key)}"
                )
        if not self.survival_temp_c <= self.gpu_min_operating_temp_c < self.gpu_temp_limit_c:
            raise UserError(
                f"profile {name!r}: need survival_temp_c <= gpu_min_operating_temp_c < gpu_temp_limit_c"
            )
        if not self.gpu_idle_power_w <= self.gpu_min_power_w <= self.gpu_max_power_w:
            raise UserError(f"profile {name!r}: need gpu_idle_power_w <= gpu_min_power_w <= gpu_max_power_w")

    @property
    def reserve_wh(self) -> float:
        return self.battery_reserve_fraction * self.battery_capacity_wh

    @property
    def gpu_bits(self) -> float:
        return self.gpu_memory_bytes * 8.0


def _seconds(value) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str):
        from skyrack.orbit.timebase import parse_time

        return parse_time(value).timestamp()
    raise TypeError(value)
