"""Exact (damped) Newton steps on the batch loss, for models small enough to hold a Hessian.

``Newton.step(closure)`` takes the training loop's ``harness.train.fit.Closure``: one
``closure()`` call gives the loss and the gradient (one gradient evaluation, as for
every other optimizer), ``closure.loss_of(params)`` the same batch loss as a function
of the flat parameter vector, which ``torch.autograd.functional.hessian``
differentiates twice. The step solves

    (H + damping * I) d = g,    theta <- theta - lr * d

in float64 (``torch.linalg.solve``; least squares where the damped Hessian is
singular). The Hessian has n^2 entries for n parameters: the method
(``optbench_optim.optimizers.NewtonParams``) skips models above its ``max_params``.

This module imports torch; the plugin imports it only when a Newton optimizer is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.autograd.functional import hessian

from harness import Closure

#: Below this many parameters one backward per Hessian row is faster than the vectorized
#: (vmap) form on CPU: 0.07 s against 0.49 s for the 100-dim quadratic at batch 1000, while
#: for logreg on digits (650 parameters, batch 1347) vmap wins, 0.27 s against 0.31 s.
VECTORIZE_ABOVE = 300


def flat_hessian(f: Callable[[torch.Tensor], torch.Tensor], flat: torch.Tensor) -> torch.Tensor:
    """d^2 f / d flat^2 as an n x n matrix: vectorized (one batched backward) for larger n
    where the model's ops allow it, else one backward per row."""
    n = flat.numel()
    with torch.enable_grad():
        if n <= VECTORIZE_ABOVE:
            return hessian(f, flat, vectorize=False).reshape(n, n)
        try:
            h = hessian(f, flat, vectorize=True)
        except RuntimeError:  # an op without a batching rule
            h = hessian(f, flat, vectorize=False)
    return h.reshape(n, n)


def newton_direction(
    h: torch.Tensor, g: torch.Tensor, damping: torch.Tensor | float
) -> tuple[torch.Tensor, str]:
    """(d, solver): d solves (h + diag(damping)) d = g in float64.

    ``torch.linalg.solve`` first; where the damped Hessian is singular (or that solve is
    not finite) the minimum-norm least-squares solution, and solver says "lstsq".
    """
    a = h.detach().double().clone()
    a.diagonal().add_(torch.as_tensor(damping, dtype=torch.float64, device=a.device))
    b = g.detach().double()
    try:
        d = torch.linalg.solve(a, b)
        if bool(torch.isfinite(d).all()):
            return d, "solve"
    except RuntimeError:  # torch.linalg.LinAlgError: the matrix is singular
        pass
    if a.device.type == "cpu":
        d = torch.linalg.lstsq(a, b.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    else:  # off the CPU lstsq has only "gels", which needs full rank
        d = torch.linalg.pinv(a, hermitian=True) @ b
    return d, "lstsq"


class Newton(torch.optim.Optimizer):
    """Exact damped Newton over every parameter of every group, jointly.

    ``step(closure)`` needs a ``harness.train.fit.Closure`` (a TypeError says so otherwise).
    Each group's ``lr`` scales its share of the step and its ``damping`` goes on its
    diagonal entries. ``solver_fallbacks`` counts the steps that needed least squares.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, damping: float = 1e-4) -> None:
        if not lr > 0.0:
            raise ValueError(f"Newton: lr must be > 0, got {lr}")
        if not damping >= 0.0:
            raise ValueError(f"Newton: damping must be >= 0, got {damping}")
        super().__init__(params, {"lr": lr, "damping": damping})
        self.solver_fallbacks = 0

    def step(self, closure: Any = None) -> torch.Tensor:  # type: ignore[override]
        if not isinstance(closure, Closure):
            raise TypeError(
                "Newton.step(closure) needs the training loop's closure, a "
                "harness.train.fit.Closure: it builds the Hessian from closure.loss_of(params); "
                f"got {type(closure).__name__}"
            )
        loss = closure()  # zeroes the gradients and back-propagates: one gradient evaluation
        if not bool(torch.isfinite(loss.detach())):
            return loss  # the loop sees the non-finite loss and ends the run as diverged
        params = [p for group in self.param_groups for p in group["params"]]
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        grad = torch.cat(
            [(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params]
        )
        damping = torch.cat(
            [
                torch.full((p.numel(),), float(group["damping"]), dtype=torch.float64)
                for group in self.param_groups
                for p in group["params"]
            ]
        ).to(flat.device)
        h = flat_hessian(closure.loss_of(params), flat)
        d, solver = newton_direction(h, grad, damping)
        if solver != "solve":
            self.solver_fallbacks += 1
        with torch.no_grad():
            offset = 0
            for group in self.param_groups:
                for p in group["params"]:
                    n = p.numel()
                    p.add_(d[offset : offset + n].view_as(p).to(p.dtype), alpha=-group["lr"])
                    offset += n
        return loss
