"""The linear layers' matrix products, opened up: where compute faults strike and where
algorithm-based fault tolerance (ABFT) checks them.

Most of a transformer's arithmetic is in its linear layers: one GEMM forward (y = x W^T) and
two backward (grad_x = grad_y W, grad_W = grad_y^T x). A GPU silent data corruption is a wrong
element in the output of such a kernel. `GemmSites.install(model)` routes every `nn.Linear` of
the model through one autograd function that computes the same products as `F.linear` (the
same `mm` calls autograd makes, so the results are bitwise identical) and, after each one,

  * lets the injector corrupt the output (`sites.tamper(site, out, a, b)`, out = a @ b), and
  * lets the checker verify it (`sites.check(site, out, a, b)`).

With neither set the layer runs plain `F.linear`: an unprotected run without compute faults
pays nothing.

The check (`Abft`) is the classic row checksum: the row sums of out = a @ b must equal
a @ (b's row sums). Both sides are computed in fp32, so they differ by rounding; the residual
is compared with u sqrt(k n) ||out_row||_2, the scale of that rounding (u = 2^-24 in fp32, k the
inner dimension, n the row length; one fast pass over the output, where the textbook scale
|a| @ |b| costs two more passes over the inputs and an L1 norm is a slow reduction on CPU), and a
residual above `threshold` units of it is a fault. The worst ratio of a step is kept on the
device (no synchronisation per product); the guard reads it once, before the update.

What the check costs and why it stays as it is (measured at the cpu preset's shapes, 51 products a
step, one thread): about 16 % of the time of the GEMMs it checks, of which the pass over `a`
(with b's row sums) is ~40 %, the output's row sums and row norms ~20 % each, the rest the
operations around them; fewer operations per product (one addmv for the residual, the step's
ratios reduced by list-wide operations) measured no faster. Fusing the checksum into the product
(a @ [b, b 1], the checksum column computed by the GEMM itself) would save the pass over `a`, and
MKL does give the first n columns bitwise equal to a @ b; but the output is then a strided view
whose layout the layers after it compute on, and a protected run parted from an unprotected one
in the last bits from its first step. A contiguous copy of the output costs what the fusion saves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

PHASES = ("forward", "grad_input", "grad_weight")


class _CheckedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, sites, name):
        x2 = x.reshape(-1, x.shape[-1])
        wt = weight.t()
        y = x2.mm(wt)
        sites.after(f"{name}.forward", y, x2, wt)
        ctx.save_for_backward(x2, weight)
        ctx.sites, ctx.name, ctx.x_shape = sites, name, x.shape
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_y):
        x2, weight = ctx.saved_tensors
        g2 = grad_y.reshape(-1, grad_y.shape[-1])
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = g2.mm(weight)
            ctx.sites.after(f"{ctx.name}.grad_input", gx, g2, weight)
            gx = gx.view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            xt = x2.t()
            gwt = xt.mm(g2)  # autograd's order for mm: (x^T grad_y), then transposed
            ctx.sites.after(f"{ctx.name}.grad_weight", gwt, xt, g2)
            gw = gwt.t()
        return gx, gw, None, None


class GemmSites:
    """The GEMM sites of one model; `for_model` gives the one instance a model has."""

    def __init__(self, model: nn.Module):
        self.names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        self.tamper: Callable | None = None  # fn(site, out, a, b): may change `out` in place
        self.check: Callable | None = None  # fn(site, out, a, b): verifies `out`
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
            return _CheckedLinear.apply(x, weight, self, name)

        return forward

    def after(self, site: str, out, a, b) -> None:
        with torch.no_grad():
            if self.tamper is not None:
                self.tamper(site, out, a, b)
            if self.check is not None:
                self.check(site, out, a, b)


class Abft:
    """Row-checksum verification of every GEMM output; `worst()` is the largest residual of
    the step so far in units of its rounding scale.

    Per product: one pass over the output for its row sums, one for its row norms, one over `a`
    for a @ (b's row sums), and a few operations on row-length vectors. Each product's worst row
    ratio stays a 0-d tensor on the device and the step's are reduced once, in `worst()`: at the
    small sizes of a CPU run the number of operations costs as much as the passes."""

    def __init__(self, threshold: float = 1.0):
        self.threshold = threshold
        self._ratios: list[torch.Tensor] = []

    def __call__(self, site: str, out, a, b) -> None:
        unit = torch.finfo(out.dtype).eps / 2 * (a.shape[1] * out.shape[1]) ** 0.5
        out, a, b = out.float(), a.float(), b.float()  # no copies in fp32
        residual = out.sum(1).sub_(a.mv(b.sum(1))).abs_()
        scale = torch.linalg.vector_norm(out, dim=1).clamp_min_(torch.finfo(torch.float32).tiny)
        self._ratios.append(residual.div_(scale).amax().div_(unit))

    def reset(self) -> None:
        self._ratios = []

    def worst(self) -> float:
        if not self._ratios:
            return 0.0
        worst = float(torch.stack(self._ratios).amax())
        return float("inf") if worst != worst else worst  # a NaN anywhere in a product is a fault
