"""Where mission runs live: `<runs>/<run-id>/telemetry.sqlite`, with `<runs>` from `--runs-dir`,
else `$SKYRACK_RUNS`, else `./runs`. The mission writes there; the ground server and the
assistant read there."""

from __future__ import annotations

import os
from pathlib import Path

ARCHIVE_NAME = "telemetry.sqlite"


def runs_root(given: str | os.PathLike | None = None) -> Path:
    return Path(given or os.environ.get("SKYRACK_RUNS") or "runs")
