"""Where mission runs live: `<runs>/<run-id>/telemetry.sqlite`, with `<runs>` from `--runs-dir`,
else `$SKYRACK_RUNS`, else `./runs`. The mission writes there; the ground server and the
assistant read there. With a real link (`--link ground|relay`) the run also holds
`ground.sqlite`, the ground's own archive, and the ground server reads that one."""

from __future__ import annotations

import os
from pathlib import Path

ARCHIVE_NAME = "telemetry.sqlite"  # the on-board store
GROUND_ARCHIVE_NAME = "ground.sqlite"  # what the ground received over the link (skyrack.link)


def runs_root(given: str | os.PathLike | None = None) -> Path:
    return Path(given or os.environ.get("SKYRACK_RUNS") or "runs")
