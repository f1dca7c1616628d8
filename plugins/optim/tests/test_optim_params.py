"""optim.*: registration, parameter validation, the torch optimizers the params build,
and the Newton optimizer on tiny problems without the training loop."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pydantic
import pytest
import torch
from optbench_optim import optimizers as o
from optbench_optim import plugin
from optbench_optim.newton import Newton, newton_direction
from torch import nn

from harness.errors import SuiteError
from harness.testing import registered_objects
from harness.train.fit import Closure

PARAMS = {
    "optim.sgd": o.SGDParams,
    "optim.adam": o.AdamParams,
    "optim.adamw": o.AdamWParams,
    "optim.rmsprop": o.RMSpropParams,
    "optim.adagrad": o.AdagradParams,
    "optim.lbfgs": o.LBFGSParams,
    "optim.newton": o.NewtonParams,
}


def test_registers_seven_optimizer_methods_through_the_hookspec():
    methods = registered_objects(plugin)
    assert {m.name: m.params for m in methods} == PARAMS
    assert all(m.kind == "optimizer" for m in methods)
    assert all(m.description and "\n" not in m.description for m in methods)


def test_entry_point_names_the_plugin_module():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["optbench"] == {"optim": "optbench_optim.plugin"}


@pytest.mark.parametrize("cls", list(PARAMS.values()), ids=list(PARAMS))
def test_every_method_takes_a_bounded_lr_and_a_schedule(cls):
    assert set(cls.model_fields) >= {"lr", "schedule"}
    assert all(f.description for f in cls.model_fields.values())
    for lr in (1e-6, 10.0):
        assert cls(lr=lr).lr == lr
    for bad in ({"lr": 0.0}, {"lr": -0.1}, {"lr": 10.5}, {"schedule": "linear"}, {"lrr": 0.1}):
        with pytest.raises(pydantic.ValidationError):
            cls(**bad)
    for schedule in ("none", "cosine", "step"):
        assert cls(schedule=schedule).schedule == schedule


def test_defaults():
    assert o.SGDParams().model_dump() == {
        "lr": 0.01, "schedule": "none", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
    }
    assert o.AdamParams().weight_decay == 0.0 and o.AdamWParams().weight_decay == 0.01
    assert (o.AdamParams().lr, o.RMSpropParams().lr, o.AdagradParams().lr) == (1e-3, 1e-2, 1e-2)
    assert o.LBFGSParams().model_dump() == {
        "lr": 1.0, "schedule": "none", "history_size": 10, "line_search": "strong_wolfe",
        "max_iter": 1, "max_eval": 25,
    }
    assert o.NewtonParams().model_dump() == {
        "lr": 1.0, "schedule": "none", "damping": 1e-4, "max_params": 5000,
    }


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (o.SGDParams, {"momentum": 1.0}),
        (o.SGDParams, {"momentum": -0.1}),
        (o.SGDParams, {"weight_decay": -1e-4}),
        (o.AdamParams, {"beta1": 1.0}),
        (o.AdamParams, {"beta2": -0.1}),
        (o.AdamParams, {"eps": 0.0}),
        (o.AdamWParams, {"weight_decay": 2.0}),
        (o.RMSpropParams, {"alpha": 1.0}),
        (o.RMSpropParams, {"momentum": 1.5}),
        (o.AdagradParams, {"lr_decay": -0.1}),
        (o.AdagradParams, {"eps": -1e-10}),
        (o.LBFGSParams, {"line_search": "armijo"}),
        (o.LBFGSParams, {"history_size": 0}),
        (o.LBFGSParams, {"max_iter": 0}),
        (o.LBFGSParams, {"max_eval": 0}),
        (o.NewtonParams, {"damping": -1e-6}),
        (o.NewtonParams, {"max_params": 0}),
        (o.NewtonParams, {"max_params": o.NEWTON_MAX_PARAMS_CAP + 1}),
    ],
)
def test_params_reject_out_of_range_values(cls, bad):
    with pytest.raises(pydantic.ValidationError):
        cls(**bad)


def test_nesterov_needs_momentum():
    with pytest.raises(pydantic.ValidationError, match="nesterov: true needs momentum > 0"):
        o.SGDParams(nesterov=True)
    assert o.SGDParams(nesterov=True, momentum=0.9).nesterov


def test_strong_wolfe_needs_an_evaluation_budget():
    with pytest.raises(pydantic.ValidationError, match="max_eval=1 leaves the strong-Wolfe line search"):
        o.LBFGSParams(max_eval=1)
    assert o.LBFGSParams(max_eval=1, line_search="none").max_eval == 1
    assert o.LBFGSParams(max_eval=2).max_eval == 2


def test_a_suite_with_bad_params_is_refused_before_any_cell_runs(optim_entry_point, optbench_run, tiny_suite):
    suite = tiny_suite("optim.sgd", {"lr": 0.1, "nesterov": True}, model="logreg", train={"epochs": 1})
    with pytest.raises(SuiteError, match=r"methods\[0\]\.params: nesterov: true needs momentum > 0"):
        optbench_run(suite)


def test_params_build_the_torch_optimizer_they_describe():
    w = [nn.Parameter(torch.zeros(3))]

    def group(params: o.OptimParams, cls: type) -> dict:
        opt = params.build(w)
        assert type(opt) is cls
        return opt.param_groups[0]

    g = group(o.SGDParams(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4), torch.optim.SGD)
    assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) == (0.1, 0.9, True, 1e-4)
    g = group(o.AdamParams(beta1=0.8, beta2=0.99, eps=1e-6), torch.optim.Adam)
    assert (g["betas"], g["eps"], g["weight_decay"]) == ((0.8, 0.99), 1e-6, 0.0)
    assert group(o.AdamWParams(), torch.optim.AdamW)["weight_decay"] == 0.01
    g = group(o.RMSpropParams(alpha=0.9, momentum=0.5), torch.optim.RMSprop)
    assert (g["lr"], g["alpha"], g["momentum"]) == (0.01, 0.9, 0.5)
    assert group(o.AdagradParams(lr_decay=0.01), torch.optim.Adagrad)["lr_decay"] == 0.01
    g = group(o.LBFGSParams(), torch.optim.LBFGS)
    assert (g["max_iter"], g["max_eval"], g["history_size"], g["line_search_fn"]) == (1, 25, 10, "strong_wolfe")
    assert group(o.LBFGSParams(line_search="none"), torch.optim.LBFGS)["line_search_fn"] is None
    g = group(o.NewtonParams(lr=0.5, damping=0.1), Newton)
    assert (g["lr"], g["damping"]) == (0.5, 0.1)


# --- Newton without the training loop: a Closure built by hand ---------------------


def least_squares() -> tuple[nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A convex problem with a known minimum: linear regression, 3 inputs and a bias."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3 + 0.1 * torch.randn(40, generator=g)
    design = torch.cat([x, torch.ones(40, 1)], dim=1).double()
    best = torch.linalg.lstsq(design, y.double().unsqueeze(1)).solution.squeeze(1)
    torch.manual_seed(0)
    return nn.Linear(3, 1), x, y, best


def mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return (model(x).squeeze(1) - y).square().mean()


def test_one_newton_step_reaches_the_minimum_of_a_convex_quadratic():
    model, x, y, best = least_squares()
    opt = Newton(model.parameters(), lr=1.0, damping=0.0)
    closure = Closure(model, mse, x, y, list(model.parameters()))
    start = opt.step(closure)
    reached = torch.cat([model.weight.detach().flatten(), model.bias.detach()]).double()
    assert torch.allclose(reached, best, atol=1e-4)
    assert closure.evals == 1  # one gradient evaluation per step; the Hessian is extra
    after = opt.step(closure)  # at the minimum the next step stays put
    assert after.item() < start.item()
    assert torch.allclose(torch.cat([model.weight.detach().flatten(), model.bias.detach()]).double(), best, atol=1e-4)
    assert opt.solver_fallbacks == 0


def test_lr_scales_the_newton_step():
    model, x, y, best = least_squares()
    before = torch.cat([model.weight.detach().flatten(), model.bias.detach()]).double()
    Newton(model.parameters(), lr=0.25, damping=0.0).step(Closure(model, mse, x, y, list(model.parameters())))
    after = torch.cat([model.weight.detach().flatten(), model.bias.detach()]).double()
    assert torch.allclose(after, before + 0.25 * (best - before), atol=1e-4)


def test_a_singular_hessian_falls_back_to_least_squares():
    class WithUnused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.tensor([3.0, -1.0]))
            self.unused = nn.Parameter(torch.tensor([5.0]))  # no effect on the loss: a zero Hessian row

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a.expand(x.shape[0], 2)

    model = WithUnused()
    opt = Newton(model.parameters(), damping=0.0)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    opt.step(Closure(model, lambda m, xb, yb: (m(xb) - xb).square().sum(dim=1).mean(), x, None,
                     list(model.parameters())))
    assert torch.allclose(model.a.detach(), x.mean(dim=0), atol=1e-5)
    assert model.unused.item() == 5.0  # the minimum-norm step leaves it alone
    assert opt.solver_fallbacks == 1


def test_newton_direction_solves_the_damped_system():
    h = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    d, solver = newton_direction(h, torch.tensor([2.0, 4.0]), 2.0)
    assert solver == "solve" and torch.allclose(d, torch.tensor([0.5, 2.0 / 3.0], dtype=torch.float64))


@pytest.mark.parametrize("closure", [None, lambda: torch.tensor(1.0)], ids=["none", "plain-callable"])
def test_newton_step_needs_the_harness_closure(closure):
    opt = Newton([nn.Parameter(torch.zeros(2))])
    with pytest.raises(TypeError, match=r"needs the training loop's closure, a harness\.train\.fit\.Closure"):
        opt.step(closure)


def test_newton_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="lr must be > 0"):
        Newton([nn.Parameter(torch.zeros(2))], lr=0.0)
    with pytest.raises(ValueError, match="damping must be >= 0"):
        Newton([nn.Parameter(torch.zeros(2))], damping=-1.0)
