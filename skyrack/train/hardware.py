"""What the machine that trains can do fast: the CPU's model and vector extensions, and the
precision each hot path should run in there.

bf16 arithmetic is fast on CUDA GPUs and on CPUs with AVX-512 BF16 or AMX; elsewhere (AVX2
x86, most ARM builds of torch) a CPU emulates it by converting to float32 and back around
every product, and a bf16 matrix product costs many times the float32 one (Muon's
orthogonalization of the cpu preset's 16 hidden matrices: ~1.2 s a step in bf16 against
~30 ms in float32 on a 2-core AVX2 EPYC). The capabilities come from torch's own cpuinfo
(every OS torch runs on), else from /proc/cpuinfo; nothing is measured, so the choice is the
same on every run on one machine and a fixed seed stays bitwise reproducible.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str] = field(default_factory=frozenset)  # names as Linux's /proc/cpuinfo spells them
    threads: int = 1  # the threads torch computes with

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def amx_bf16(self) -> bool:
        return "amx_bf16" in self.flags

    @property
    def fast_bf16(self) -> bool:
        """Native bf16 products: AVX-512 BF16 (dot products) or AMX (tile multiplies)."""
        return self.avx512_bf16 or self.amx_bf16

    def describe(self) -> str:
        """e.g. 'AMD EPYC: AVX2 yes, AVX-512 no, BF16 no, AMX no, 2 threads'."""

        def yes(flag: bool) -> str:
            return "yes" if flag else "no"

        return (
            f"{self.model}: AVX2 {yes(self.avx2)}, AVX-512 {yes(self.avx512)}, "
            f"BF16 {yes(self.avx512_bf16)}, AMX {yes(self.amx_bf16)}, {self.threads} thread{'s' * (self.threads != 1)}"
        )

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "avx2": self.avx2,
            "avx512": self.avx512,
            "avx512_bf16": self.avx512_bf16,
            "amx_bf16": self.amx_bf16,
            "threads": self.threads,
        }


# torch's cpuinfo names -> /proc/cpuinfo names, for the flags the choices here read
_TORCH_FLAGS = {"avx2": "avx2", "avx512_f": "avx512f", "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16"}


def cpu_info() -> CpuInfo:
    """This machine's CPU (read once per process) and the threads torch uses now."""
    return dataclasses.replace(_cpu(), threads=torch.get_num_threads())


@functools.cache
def _cpu() -> CpuInfo:
    model, flags = "", set()
    try:
        caps = torch._C._cpu._get_cpu_capability()  # torch's bundled cpuinfo: every OS torch runs on
        model = str(caps.get("cpu_name") or "")
        flags = {ours for theirs, ours in _TORCH_FLAGS.items() if caps.get(theirs)}
    except (AttributeError, RuntimeError):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    key = key.strip()
                    if key == "model name" and not model:
                        model = value.strip()
                    elif key in ("flags", "Features") and not flags:
                        flags = set(value.split())
        except OSError:
            pass
    return CpuInfo(
        model=model or platform.processor() or platform.machine() or "unknown CPU", flags=frozenset(flags)
    )


def matmul_dtype(device: torch.device, cpu: CpuInfo | None = None) -> tuple[torch.dtype, str]:
    """(the dtype that matrix products run fastest in on `device`, why). Used for work that
    tolerates bf16 (Muon's orthogonalization); `cpu` is injectable for tests."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "CUDA"
        return torch.float32, "this GPU has no bf16"
    if device.type != "cpu":
        return torch.float32, f"{device.type} device"
    cpu = cpu or cpu_info()
    if cpu.amx_bf16:
        return torch.bfloat16, "this CPU has AMX"
    if cpu.avx512_bf16:
        return torch.bfloat16, "this CPU has AVX-512 BF16"
    return torch.float32, "this CPU has no fast bf16"
