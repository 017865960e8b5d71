"""Which torch device a job runs on: the one asked for, else CUDA when present, else the CPU.

torch is imported only when a device is picked, so importing this module costs nothing."""

from __future__ import annotations

from skyrack.errors import UserError


def pick_device(requested: str | None = None):
    """The requested device (a clear error when it is unknown or absent), else CUDA when
    present, else the CPU; a `torch.device`."""
    import torch

    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UserError(f"unknown device {requested!r} (cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {requested}: CUDA is not available on this machine")
    return device
