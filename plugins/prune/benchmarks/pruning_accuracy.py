"""Accuracy of every CPU pruner on digits, no fine-tuning: the figures in the plugin README.

    python plugins/prune/benchmarks/pruning_accuracy.py

Trains the built-in mlp and cnn on digits exactly as the plugin tests do (seed 0,
10 epochs, one thread), then applies each method to a copy of the trained model and
prints top-1 test accuracy, parameter count and layer shapes. Seeded methods are run
with seeds 0, 1, 2.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optbench_prune import plugin  # noqa: E402
from optbench_prune.structured import layer_shapes  # noqa: E402

from harness import MethodContext  # noqa: E402
from harness.builtin.datasets import DIGITS, DigitsParams  # noqa: E402
from harness.builtin.models import CNN, MLP, CNNParams, MLPParams  # noqa: E402
from harness.testing import registered_objects  # noqa: E402
from harness.train.classifier import evaluate_accuracy, train_classifier  # noqa: E402

EPOCHS = 10
CPU = torch.device("cpu")
RUNS = [
    ("prune.magnitude", {"sparsity": 0.5}, [0]),
    ("prune.random", {"sparsity": 0.5}, [0, 1, 2]),
    ("prune.gradient", {"sparsity": 0.5}, [0, 1, 2]),
    *[("prune.structured", {"ratio": 0.5, "importance": imp}, [0]) for imp in ("l1", "l2", "taylor", "random")],
]


def main() -> None:
    torch.set_num_threads(1)
    methods = {m.name: m for m in registered_objects(plugin)}
    data = DIGITS.load(DigitsParams(), 0)
    for name, spec, params in [("mlp", MLP, MLPParams()), ("cnn", CNN, CNNParams())]:
        torch.manual_seed(0)
        base = spec.build(params, data)
        train_classifier(base, data, epochs=EPOCHS, lr=1e-3, batch_size=64, seed=0)
        acc = evaluate_accuracy(base, data.x_test, data.y_test, device=CPU)
        n = sum(p.numel() for p in base.parameters())
        print(f"{name}: baseline accuracy {acc:.3f}, {n} params, shapes {layer_shapes(base)}")
        for method_name, kwargs, seeds in RUNS:
            method = methods[method_name]
            accs = []
            for seed in seeds:
                model = copy.deepcopy(base)
                ctx = MethodContext(data=data, device=CPU, backend="cpu", seed=seed, log=lambda _m: None)
                model = method.apply(model, method.params(**kwargs), ctx)
                accs.append(evaluate_accuracy(model, data.x_test, data.y_test, device=CPU))
            n = sum(p.numel() for p in model.parameters())
            per_seed = "/".join(f"{a:.3f}" for a in accs)
            print(f"  {method_name} {kwargs}: accuracy mean {sum(accs) / len(accs):.3f} ({per_seed}), {n} params")
            if method_name == "prune.structured" and kwargs["importance"] == "l1":
                print(f"    shapes {layer_shapes(model)}")


if __name__ == "__main__":
    main()
