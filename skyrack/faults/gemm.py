"""The linear layers' matrix products, opened up: where compute faults strike and where
algorithm-based fault tolerance (ABFT) checks them.

Most of a transformer's arithmetic is in its linear layers: one GEMM forward (y = x W^T) and
two backward (grad_x = grad_y W, grad_W = grad_y^T x). A GPU silent data corruption is a wrong
element in the output of such a kernel. `GemmSites.install(model)` routes every `nn.Linear` of
the model through one autograd function that computes the same products as `F.linear` (the
same `mm` calls autograd makes, so the results are bitwise identical) and

  * after each product lets the injector corrupt its output (`sites.tamper(site, out, a, b)`,
    out = a @ b), and
  * after the layer's forward and after its backward lets the checker (`sites.check`, an `Abft`)
    verify the products.

With neither set the layer runs plain `F.linear`: an unprotected run without compute faults
pays nothing.

The check (`Abft`) is the classic row checksum: the row sums of out = a @ b must equal
a @ (b's row sums). Both sides are computed in fp32, so they differ by rounding; the residual
is compared with u sqrt(k n) ||out_row||_2, the scale of that rounding (u = 2^-24 in fp32, k the
inner dimension, n the row length; one fast pass over the output, where the textbook scale
|a| @ |b| costs two more passes over the inputs and an L1 norm is a slow reduction on CPU), and a
residual above `threshold` units of it is a fault. The worst ratio of a step is kept on the
device (no synchronisation per product); the guard reads it once, before the update.

What the check costs (the cpu preset's shapes, 51 products a step, one thread): on torch's eager
operations about 16 % of the time of the GEMMs it checks, because each operation reads its operand
again (the output twice, for its sums and its norms, and `a` once). On CPU in float32 the checks
therefore run in C (`skyrack.faults.native`), a linear layer's three products in two passes: the
forward output's row sums and norms as soon as it exists, and everything else in the layer's
backward, in one pass over the rows of x and grad_y, which both backward products read (checked
one by one, the three passes read x and grad_y twice each; in one process the layer pass took
13 % less time inside the checks, 5.8 % of a protected step against 6.7 %). What is left is
reading each product's output and operands once, mostly from beyond the L2 cache: the checks are
bound by memory, not arithmetic. Checking the grad-weight product by its columns instead, from
sums the forward pass could gather, would save its pass over x; but a column of x^T g sums terms
that cancel (gradients), its rounding is then far above u sqrt(m k) times the column's norm, and
in DiLoCo's rounds on the tiny model 30 of 60 steps were false alarms (the row check: 0 in C, 3 on
torch). Fusing the checksum into the GEMM itself (a @ [b, b 1]) would save the pass over `a`, but
the output is then a strided view, and the layers after it, computing on that layout, parted from
an unprotected run in the last bits; computing the products in row blocks that stay in cache
while checked keeps the bits but costs the GEMMs more (4-11 % at 256 rows) than it saves.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

PHASES = ("forward", "grad_input", "grad_weight")


class _CheckedLinear(torch.autograd.Function):
    # the products autograd computes for F.linear, in its layouts: y = x W^T, grad_x = grad_y W
    # and grad_W = grad_y^T x (already W's layout, so no copy when it is accumulated)
    @staticmethod
    def forward(ctx, x, weight, sites, name, backward_follows):
        x2 = x.reshape(-1, x.shape[-1])
        y = x2.mm(weight.t())
        sites.forward_done(name, y, x2, weight, backward_follows)
        ctx.save_for_backward(x2, weight)
        ctx.sites, ctx.name, ctx.x_shape = sites, name, x.shape
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_y):
        x2, weight = ctx.saved_tensors
        sites, name = ctx.sites, ctx.name
        g2 = grad_y.reshape(-1, grad_y.shape[-1])
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = g2.mm(weight)
            sites.product(name, "grad_input", gx, g2, weight)
        if ctx.needs_input_grad[1]:
            gw = g2.t().mm(x2)
            sites.product(name, "grad_weight", gw, g2.t(), x2)
        sites.backward_done(name, x2, weight, g2, gx, gw)
        return (gx.view(ctx.x_shape) if gx is not None else None), gw, None, None, None


class GemmSites:
    """The GEMM sites of one model; `for_model` gives the one instance a model has."""

    def __init__(self, model: nn.Module):
        self.names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        self.tamper: Callable | None = None  # fn(site, out, a, b): may change `out` in place
        self.check: Abft | None = None  # verifies every product
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear):
                module.forward = self._forward(name, module)

    @classmethod
    def for_model(cls, model: nn.Module) -> GemmSites:
        sites = getattr(model, "_gemm_sites", None)
        if sites is None:
            sites = cls(model)
            model._gemm_sites = sites
        return sites

    def sites(self) -> list[str]:
        return [f"{n}.{p}" for n in self.names for p in PHASES]

    def _forward(self, name: str, module: nn.Linear):
        def forward(x):
            if (self.tamper is None and self.check is None) or module.bias is not None:
                return F.linear(x, module.weight, module.bias)
            weight = module.weight
            if torch.is_autocast_enabled(x.device.type):  # what F.linear would compute in
                dtype = torch.get_autocast_dtype(x.device.type)
                x, weight = x.to(dtype), weight.to(dtype)
            backward_follows = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
            return _CheckedLinear.apply(x, weight, self, name, backward_follows)

        return forward

    def product(self, name: str, phase: str, out, a, b) -> None:
        """Layer `name`'s product `phase`, out = a @ b, has been computed: the injector may
        corrupt it (the site's name is only built when there is one)."""
        if self.tamper is not None:
            with torch.no_grad():
                self.tamper(f"{name}.{phase}", out, a, b)

    # (inside the autograd function: no graph is recorded there)
    def forward_done(self, name: str, y, x, weight, backward_follows: bool) -> None:
        self.product(name, "forward", y, x, weight.t())
        if self.check is not None:
            self.check.after_forward(name, y, x, weight, backward_follows)

    def backward_done(self, name: str, x, weight, g, gx, gw) -> None:
        if self.check is not None:
            self.check.after_backward(name, x, weight, g, gx, gw)


class Abft:
    """Row-checksum verification of every GEMM output; `worst()` is the largest residual of
    the step so far in units of its rounding scale.

    Per product: the output's row sums and row norms, a @ (b's row sums), and the worst row ratio.
    On CPU in float32 a linear layer's three products are checked in C (`skyrack.faults.native`)
    in two passes: the forward output's row sums and norms as soon as it exists, and the rest in
    the layer's backward, in one pass over x and grad_y (which the backward's two products read
    anyway). A forward with no backward to follow (evaluation), and every product elsewhere (CUDA,
    other dtypes, strided operands), is checked on its own: in C where it can be, else in four
    torch operations whose worst ratio stays a 0-d tensor on the device, the step's reduced once
    in `worst()` (no synchronisation per product)."""

    def __init__(self, threshold: float = 1.0, native: bool = True):
        from skyrack.faults.native import kernels

        self.threshold = threshold
        self.native = kernels() if native else None
        self._ratios: list[torch.Tensor] = []
        self._native_worst = 0.0
        # forward outputs whose check waits for the layer's backward: (name, x's address) ->
        # (row sums, row sums of squares, x, W)
        self._pending: dict[tuple[str, int], tuple] = {}

    # -- a linear layer's products, checked together where they can be ---------------------------
    def after_forward(self, name: str, y, x, weight, backward_follows: bool) -> None:
        if backward_follows and self.native is not None and _native_ready(y, x, weight):
            sums = torch.empty(y.shape[0], dtype=torch.float64)
            sumsq = torch.empty(y.shape[0], dtype=torch.float64)
            self.native.row_stats(
                y.data_ptr(), *y.shape, sums.data_ptr(), sumsq.data_ptr(), torch.get_num_threads()
            )
            self._pending[(name, x.data_ptr())] = (sums, sumsq, x, weight)
        else:
            self(f"{name}.forward", y, x, weight.t())

    def after_backward(self, name: str, x, weight, g, gx, gw) -> None:
        fwd = self._pending.pop((name, x.data_ptr()), None)
        if self.native is not None and _native_ready(x, weight, g, gx, gw):
            sums, sumsq = (fwd[0].data_ptr(), fwd[1].data_ptr()) if fwd else (None, None)
            m, k, n = x.shape[0], x.shape[1], g.shape[1]
            ratios = (ctypes.c_float * 3)()
            self.native.linear_backward(
                x.data_ptr(), weight.data_ptr(), g.data_ptr(),
                gx.data_ptr() if gx is not None else None,
                gw.data_ptr() if gw is not None else None,
                sums, sumsq, m, k, n, torch.get_num_threads(), ratios,
            )  # fmt: skip
            units = (_unit(k, n),) * 2 + (_unit(m, n),)  # gw checked as x^T g
            self._native_worst = max(self._native_worst, *(r / u for r, u in zip(ratios, units)))
            return
        if fwd is not None:
            self._finish_forward(fwd)
        if gx is not None:
            self(f"{name}.grad_input", gx, g, weight)
        if gw is not None:  # by the rows of x^T g (see abft_linear_backward)
            self(f"{name}.grad_weight", gw.t(), x.t(), g)

    def _finish_forward(self, pending: tuple) -> None:
        sums, sumsq, x, weight = pending
        (m, k), n = x.shape, weight.shape[0]
        ratio = self.native.forward_finish(
            sums.data_ptr(),
            sumsq.data_ptr(),
            x.data_ptr(),
            weight.data_ptr(),
            m,
            n,
            k,
            torch.get_num_threads(),
        )
        self._native_worst = max(self._native_worst, ratio / _unit(k, n))

    # -- one product ---------------------------------------------------------------------------
    def __call__(self, site: str, out, a, b) -> None:
        unit = _unit(a.shape[1], out.shape[1], out.dtype)
        if self.native is not None and self._native(out, a, b, unit):
            return
        out, a, b = out.float(), a.float(), b.float()  # no copies in fp32
        residual = out.sum(1).sub_(a.mv(b.sum(1))).abs_()
        scale = torch.linalg.vector_norm(out, dim=1).clamp_min_(torch.finfo(torch.float32).tiny)
        self._ratios.append(residual.div_(scale).amax().div_(unit))

    def _native(self, out, a, b, unit: float) -> bool:
        """The same row check in C, one pass, where the operands allow; False: use torch."""
        if not (
            out.dtype == a.dtype == b.dtype == torch.float32
            and out.device.type == "cpu"
            and out.is_contiguous()
        ):
            return False
        k, threads = self.native, torch.get_num_threads()
        if a.is_contiguous() and (b.is_contiguous() or b.t().is_contiguous()):  # forward, grad-input
            transposed = not b.is_contiguous()  # forward: b = W^T, W contiguous
            ratio = k.rows_w(
                out.data_ptr(), a.data_ptr(), b.data_ptr(), *out.shape, a.shape[1], transposed, threads
            )
        elif a.t().is_contiguous() and b.is_contiguous():  # grad-weight: out = x^T @ g
            ratio = k.outer(
                out.data_ptr(), a.data_ptr(), b.data_ptr(), a.shape[1], a.shape[0], b.shape[1], threads
            )
        elif a.is_contiguous():
            v = b.sum(1)
            ratio = k.rows(out.data_ptr(), a.data_ptr(), v.data_ptr(), *out.shape, a.shape[1], threads)
        else:
            return False
        self._native_worst = max(self._native_worst, ratio / unit)
        return True

    def reset(self) -> None:
        self._ratios = []
        self._native_worst = 0.0
        self._pending.clear()

    def worst(self) -> float:
        for pending in self._pending.values():  # forwards whose backward never came
            self._finish_forward(pending)
        self._pending.clear()
        worst = self._native_worst
        if self._ratios:
            worst = max(worst, float(torch.stack(self._ratios).amax()))
        return float("inf") if worst != worst else worst  # a NaN anywhere in a product is a fault


def _unit(inner: int, row: int, dtype: torch.dtype = torch.float32) -> float:
    """A row check's rounding scale per unit of the row's norm: u sqrt(k n), for rows of `row`
    elements that each sum `inner` products (u = eps / 2, the unit roundoff)."""
    return torch.finfo(dtype).eps / 2 * (inner * row) ** 0.5


def _native_ready(*tensors) -> bool:
    """The tensors (None: absent) can go to the C checks: float32, on CPU, contiguous."""
    return all(
        t is None or (t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous())
        for t in tensors
    )
