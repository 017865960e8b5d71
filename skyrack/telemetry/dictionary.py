"""The one declaration of what the satellite reports and accepts.

Channels (name, unit, type, description, yellow and red limits), events (name, severity,
message format) and commands (name, arguments with ranges) are declared here once, as flight
software dictionaries do. The archive schema, the ground server's routes, the dashboard and
the assistant's tool descriptions read names, units and limits from this module, so a new
channel is one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class Channel:
    name: str
    unit: str
    type: str  # "float", "int", "bool" or "str"
    description: str
    yellow: tuple[float, float] | None = None  # outside (lo, hi): caution
    red: tuple[float, float] | None = None  # outside (lo, hi): alarm

    def limit_state(self, value) -> str:
        """'nominal', 'yellow' or 'red' for a value of this channel."""
        if self.type in ("str", "bool") or value is None:
            return "nominal"
        for state, band in (("red", self.red), ("yellow", self.yellow)):
            if band is not None and not band[0] <= float(value) <= band[1]:
                return state
        return "nominal"


@dataclass(frozen=True)
class EventType:
    name: str
    severity: str
    format: str  # str.format template over the event's data
    description: str

    def message(self, **data) -> str:
        return self.format.format(**data)


@dataclass(frozen=True)
class Argument:
    name: str
    type: str  # "float", "int", "bool" or "str" (JSON values; telemetry.archive.check_command checks them)
    description: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class CommandType:
    name: str
    description: str
    arguments: tuple[Argument, ...] = field(default_factory=tuple)


CHANNELS: tuple[Channel, ...] = (
    Channel("orbit.lat_deg", "deg", "float", "geodetic latitude of the point beneath"),
    Channel("orbit.lon_deg", "deg", "float", "longitude of the point beneath"),
    Channel(
        "orbit.alt_km", "km", "float", "height above the WGS84 ellipsoid", yellow=(350, 2000), red=(250, 5000)
    ),
    Channel("orbit.speed_km_s", "km/s", "float", "inertial speed"),
    Channel("orbit.sunlit", "1", "float", "visible fraction of the solar disk (1 sunlit, 0 eclipse)"),
    Channel("orbit.beta_deg", "deg", "float", "angle between the orbit plane and the Sun"),
    Channel("orbit.in_saa", "bool", "bool", "inside the South Atlantic Anomaly"),
    Channel("orbit.region", "", "str", "country or sea beneath"),
    Channel("orbit.area", "", "str", "broad region beneath, as people say it"),
    Channel("power.array_w", "W", "float", "solar array output"),
    Channel("power.load_w", "W", "float", "total electrical load (bus + GPU + its heaters)"),
    Channel(
        "power.battery_soc", "1", "float", "battery state of charge", yellow=(0.35, 1.0), red=(0.25, 1.0)
    ),
    Channel("power.battery_wh", "Wh", "float", "energy stored in the battery"),
    Channel("gpu.cap_w", "W", "float", "GPU power cap set by the governor (0: paused)"),
    Channel("gpu.temp_c", "degC", "float", "GPU / radiator temperature", yellow=(-20, 80), red=(-40, 85)),
    Channel("gpu.heater_w", "W", "float", "survival and operational heaters of the GPU's radiator node"),
    Channel("gpu.throughput", "1", "float", "training speed as a fraction of full power"),
    Channel("radiation.upset_rate", "1/s", "float", "expected memory upsets per second"),
    Channel(
        "radiation.dose_rad", "rad", "float", "accumulated ionizing dose", yellow=(0, 2000), red=(0, 15000)
    ),
    # Each fault is counted once, so recovered <= detected <= injected (faults.runtime.ProtectedRun.counts).
    Channel("faults.injected", "count", "int", "faults carried out so far"),
    Channel(
        "faults.detected",
        "count",
        "int",
        "injected faults protection caught (a check fired, a checkpoint was refused, the process died)",
    ),
    Channel(
        "faults.recovered",
        "count",
        "int",
        "detected faults whose effect was undone (recomputed, replayed, good checkpoint used, restarted)",
    ),
    Channel("train.step", "count", "int", "training step"),
    Channel("train.loss", "nats", "float", "training loss (cross-entropy per character)"),
    Channel("train.val_loss", "nats", "float", "latest validation loss"),
    Channel("train.tokens_per_s", "1/s", "float", "training throughput in characters per second"),
    # customers' jobs (skyrack.jobs.service); the GPU energy of training and idle is in its meta
    Channel("jobs.queued", "count", "int", "customers' jobs on board waiting to run"),
    Channel("jobs.running", "count", "int", "jobs that have started and whose GPU time is not yet all spent"),
    Channel("jobs.done", "count", "int", "jobs done so far (their results offered for downlink)"),
    Channel("jobs.failed", "count", "int", "jobs failed so far (a crash of the workload, a radiation upset)"),
    Channel("jobs.energy_wh", "Wh", "float", "GPU energy spent on jobs so far"),
    Channel("gpu.busy", "1", "float", "share of the tick's GPU compute that jobs and training used"),
)

EVENTS: tuple[EventType, ...] = (
    EventType("eclipse_entry", "info", "entering eclipse", "half the solar disk hidden by the Earth"),
    EventType("eclipse_exit", "info", "leaving eclipse", "half the solar disk visible again"),
    EventType("saa_entry", "info", "entering the South Atlantic Anomaly", "upset rate raised"),
    EventType("saa_exit", "info", "leaving the South Atlantic Anomaly", "upset rate back to background"),
    EventType("governor", "info", "{action}: cap {cap_w:.0f} W ({reason})", "a power or heat decision"),
    EventType("fault_injected", "warning", "{kind} fault injected ({where})", "radiation-style fault"),
    EventType(
        "fault_recovered", "warning", "{kind} fault detected and recovered ({how})", "protection worked"
    ),
    # No "fault went undetected" event: a mission flies without a fault-free run beside it, so it
    # cannot tell an undetected fault that changed the state (silent) from one that did not
    # (masked). `skyrack faults campaign` classifies them against its fault-free run.
    EventType("checkpoint", "info", "checkpoint saved at step {step}", "a verified checkpoint"),
    EventType("limit", "warning", "{channel} {state}: {value}", "a channel left its limits"),
    EventType("command", "info", "command {name} {status}", "a command changed state"),
    EventType("mission", "info", "{message}", "mission start, resume and end"),
    EventType(
        "answer",
        "info",
        "answer to question {question_id}: {answer}",
        "the satellite answers a question from the ground",
    ),
    EventType(
        "job",
        "info",
        "job {job_id} {state}: {detail}",
        "a customer's job changed state on board (skyrack.jobs.spec.STATES)",
    ),
)

COMMANDS: tuple[CommandType, ...] = (
    CommandType("ping", "no-op; completes at once"),
    CommandType("pause_training", "stop training steps until resumed"),
    CommandType("resume_training", "resume training steps"),
    CommandType("checkpoint_now", "write a verified checkpoint at the next step"),
    CommandType(
        "downlink_checkpoint",
        "write a verified checkpoint and send its files down over the link (they may span several contacts)",
    ),
    CommandType(
        "set_power_cap",
        "limit the GPU power cap",
        (Argument("cap_w", "float", "upper bound on the GPU power cap", 0.0, 1000.0),),
    ),
    CommandType(
        "set_stress",
        "scale the fault injection rate",
        (Argument("factor", "float", "multiplier on the radiation upset rate", 0.0, 1e9),),
    ),
    CommandType(
        "submit_job",
        "queue a customer's job on board (skyrack.jobs.spec: the spec is its wire form)",
        (Argument("spec", "str", "the job's spec, payload included, as JobSpec.encode() writes it"),),
    ),
    CommandType(
        "cancel_job",
        "cancel a customer's job that has not started",
        (Argument("job_id", "int", "the job's id", 1, 2**62),),
    ),
)

CHANNEL = {c.name: c for c in CHANNELS}
EVENT = {e.name: e for e in EVENTS}
COMMAND = {c.name: c for c in COMMANDS}

assert all(e.severity in SEVERITIES for e in EVENTS)
assert all(a.type in ("float", "int", "bool", "str") for c in COMMANDS for a in c.arguments)
