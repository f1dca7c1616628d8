"""Entry point module (``optbench`` group): registers the optimizer methods."""

from __future__ import annotations

from collections.abc import Callable

from harness import Method, hookimpl
from optbench_optim import optimizers as o

#: (name, params class, apply, one-line description)
METHODS = [
    ("optim.sgd", o.SGDParams, o.train,
     "SGD with optional (Nesterov) momentum and weight decay (torch.optim.SGD)"),
    ("optim.adam", o.AdamParams, o.train,
     "Adam: per-parameter steps from running gradient moments (torch.optim.Adam)"),
    ("optim.adamw", o.AdamWParams, o.train,
     "AdamW: Adam with decoupled weight decay (torch.optim.AdamW)"),
    ("optim.rmsprop", o.RMSpropParams, o.train,
     "RMSprop: steps scaled by a running mean of squared gradients (torch.optim.RMSprop)"),
    ("optim.adagrad", o.AdagradParams, o.train,
     "Adagrad: steps scaled by accumulated squared gradients (torch.optim.Adagrad)"),
    ("optim.lbfgs", o.LBFGSParams, o.train,
     "L-BFGS quasi-Newton with a strong-Wolfe line search (torch.optim.LBFGS)"),
    ("optim.newton", o.NewtonParams, o.train_newton,
     "exact damped Newton steps with the full Hessian of the batch loss (small models)"),
]


@hookimpl
def register_methods(register: Callable[[Method], None]) -> None:
    for name, params, apply, description in METHODS:
        register(
            Method(name=name, kind="optimizer", description=description, apply=apply, params=params, trains=True)
        )
