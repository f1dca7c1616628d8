"""The methods' params and apply functions, all trained through ``ctx.fit``.

Each method's params class builds its torch optimizer (``params.build(parameters)``):
the first-order ones and L-BFGS from ``torch.optim``, Newton from
``optbench_optim.newton``. So one ``train`` function serves every method but Newton,
whose ``train_newton`` first refuses models above its parameter limit. The shared
training loop does the rest (data order, closure, schedule, paused-clock evaluation,
time-to-target).

torch imports stay inside functions: this module is imported at plugin discovery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from harness import Params, Skip

if TYPE_CHECKING:
    import torch
    from torch import nn

LR_MAX = 10.0
Schedule = Literal["none", "cosine", "step"]


def lr_field(default: float, meaning: str = "learning rate") -> Any:
    """The ``lr`` field every method declares, with its own default."""
    return Field(
        default,
        gt=0.0,
        le=LR_MAX,
        description=f"{meaning}; the schedule multiplies it",
    )


def decay_field(default: float = 0.0) -> Any:
    return Field(default, ge=0.0, le=1.0, description="weight decay (L2 penalty)")


def eps_field(default: float) -> Any:
    return Field(default, gt=0.0, le=1.0, description="added to the denominator")


class OptimParams(Params):
    """What every optimizer method takes: a learning rate and a schedule."""

    lr: float = lr_field(1e-3)
    schedule: Schedule = Field(
        "none",
        description="learning-rate schedule run by the training loop, per step: "
        "none; cosine (to 0 over the run); step (x0.1 at half the steps, "
        "x0.01 at three quarters)",
    )

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The torch optimizer over ``parameters`` (the loop's trainable ones)."""
        raise NotImplementedError


class SGDParams(OptimParams):
    lr: float = lr_field(0.01)
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="momentum factor (0: none)")
    nesterov: bool = Field(False, description="Nesterov momentum (needs momentum > 0)")
    weight_decay: float = decay_field()

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDParams:
        if self.nesterov and self.momentum <= 0.0:
            raise ValueError(
                "nesterov: true needs momentum > 0 (Nesterov momentum without momentum "
                "is plain SGD, and torch.optim.SGD refuses it); set momentum, e.g. 0.9"
            )
        return self

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.SGD(
            parameters,
            lr=self.lr,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
        )


class AdamParams(OptimParams):
    lr: float = lr_field(1e-3)
    beta1: float = Field(
        0.9, ge=0.0, lt=1.0, description="decay of the running mean of gradients"
    )
    beta2: float = Field(
        0.999, ge=0.0, lt=1.0, description="decay of the running mean of squared gradients"
    )
    eps: float = eps_field(1e-8)
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="L2 penalty added to the gradient (coupled)"
    )

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.Adam(
            parameters,
            lr=self.lr,
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


class AdamWParams(AdamParams):
    weight_decay: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="decoupled weight decay: each step multiplies weights by 1 - lr * wd",
    )

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.AdamW(
            parameters,
            lr=self.lr,
            betas=(self.beta1, self.beta2),
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


class RMSpropParams(OptimParams):
    lr: float = lr_field(0.01)
    alpha: float = Field(
        0.99, ge=0.0, lt=1.0, description="decay of the running mean of squared gradients"
    )
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="momentum factor (0: none)")
    eps: float = eps_field(1e-8)
    weight_decay: float = decay_field()

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.RMSprop(
            parameters,
            lr=self.lr,
            alpha=self.alpha,
            momentum=self.momentum,
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


class AdagradParams(OptimParams):
    lr: float = lr_field(0.01)
    lr_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="the step is lr / (1 + (step - 1) * lr_decay)"
    )
    eps: float = eps_field(1e-10)
    weight_decay: float = decay_field()

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.Adagrad(
            parameters,
            lr=self.lr,
            lr_decay=self.lr_decay,
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


class LBFGSParams(OptimParams):
    lr: float = lr_field(1.0, "step length tried first (the line search may change it)")
    history_size: int = Field(
        10, ge=1, le=1000, description="curvature pairs kept (the memory of L-BFGS)"
    )
    line_search: Literal["strong_wolfe", "none"] = Field(
        "strong_wolfe",
        description="strong_wolfe: a line search along each direction; none: a fixed step of lr",
    )
    max_iter: int = Field(
        1,
        ge=1,
        le=1000,
        description="L-BFGS iterations per optimizer step (1: a step is one iteration, "
        "so step counts compare with first-order methods)",
    )
    max_eval: int = Field(
        25,
        ge=1,
        le=10_000,
        description="loss/gradient evaluations per step, the line search's included",
    )

    @model_validator(mode="after")
    def _line_search_needs_evaluations(self) -> LBFGSParams:
        if self.line_search == "strong_wolfe" and self.max_eval < 2:
            raise ValueError(
                f"max_eval={self.max_eval} leaves the strong-Wolfe line search no "
                "budget (torch gives it max_eval minus the evaluation that starts the "
                "step): it tries one step length and takes no step when that raises "
                "the loss, so L-BFGS stalls (this is torch's own default for "
                "max_iter=1); use max_eval >= 2 (default 25) or line_search: none"
            )
        return self

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        import torch

        return torch.optim.LBFGS(
            parameters,
            lr=self.lr,
            max_iter=self.max_iter,
            max_eval=self.max_eval,
            history_size=self.history_size,
            line_search_fn=None if self.line_search == "none" else self.line_search,
        )


#: The highest ``max_params`` optim.newton accepts: a 10,000 x 10,000 Hessian is
#: 400 MB in float32, plus 800 MB for the float64 copy the solve works on.
NEWTON_MAX_PARAMS_CAP = 10_000


class NewtonParams(OptimParams):
    lr: float = lr_field(1.0, "step size: theta -= lr * d (1: the full Newton step)")
    damping: float = Field(
        1e-4,
        ge=0.0,
        le=1e6,
        description="added to the Hessian's diagonal before the solve (Levenberg "
        "damping: keeps the step defined where the Hessian is singular)",
    )
    max_params: int = Field(
        5000,
        ge=1,
        le=NEWTON_MAX_PARAMS_CAP,
        description="models with more trainable parameters are skipped: the Hessian "
        "has n^2 entries",
    )

    def build(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        from optbench_optim.newton import Newton

        return Newton(parameters, lr=self.lr, damping=self.damping)


def train(model: nn.Module, params: OptimParams, ctx: Any) -> nn.Module:
    """A training-time method: the shared loop with this method's optimizer."""
    ctx.fit(model, optimizer=params.build, schedule=params.schedule)
    return model


def trainable_count(model: nn.Module) -> int:
    """Trainable parameters, each tensor once (tied weights are one tensor)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_newton(model: nn.Module, params: NewtonParams, ctx: Any) -> nn.Module:
    """optim.newton: skip a model above ``max_params``, else train with exact Newton."""
    n = trainable_count(model)
    mib = 4 * n * n / 2**20  # one float32 Hessian
    if n > params.max_params:
        raise Skip(
            f"optim.newton: the model has {n:,} trainable parameters, above the limit "
            f"max_params={params.max_params:,}: the exact Hessian has n^2 = {n * n:,} "
            f"entries ({mib:,.0f} MiB in float32) and every step solves an n x n "
            "system; use optim.lbfgs for a model this size"
        )
    ctx.log(f"optim.newton: {n:,} parameters, Hessian {n:,} x {n:,} ({mib:,.1f} MiB)")
    built: list[Any] = []

    def factory(parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        built.append(params.build(parameters))
        return built[-1]

    ctx.fit(model, optimizer=factory, schedule=params.schedule)
    fallbacks = sum(opt.solver_fallbacks for opt in built)
    if fallbacks:
        ctx.log(f"optim.newton: {fallbacks} step(s) solved by least squares (singular Hessian)")
    return model
