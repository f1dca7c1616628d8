"""Built-in models: a multi-layer perceptron and a small convolutional network.

Both are trained on the fly (see harness.train.classifier) when a trained baseline is
needed; their params carry the training settings so the cache key covers them. They output
``data.outputs`` values per sample: one score per class (or label), or the size of a regression's target.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from harness.plugin.types import DatasetSplits, Model, TrainableParams

if TYPE_CHECKING:
    from torch import nn


class MLPParams(TrainableParams):
    hidden: list[int] = Field([128, 128], description="hidden layer widths")


def build_mlp(params: MLPParams, data: DatasetSplits) -> nn.Module:
    from torch import nn

    if any(h < 1 for h in params.hidden):
        raise ValueError(f"hidden widths must be positive, got {params.hidden}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(data.input_shape)
    for h in params.hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, data.outputs))
    return nn.Sequential(*layers)


class CNNParams(TrainableParams):
    channels: list[int] = Field([16, 32], min_length=1, description="output channels of each 3x3 conv block")
    hidden: int = Field(64, ge=1, description="width of the fully connected layer")


def build_cnn(params: CNNParams, data: DatasetSplits) -> nn.Module:
    """Conv-ReLU blocks (3x3, padding 1), one 2x2 max-pool, then two Linear layers.

    Expects (C, H, W) input; a flat input is an error rather than a silent reshape.
    """
    from torch import nn

    shape = data.input_shape
    if len(shape) != 3:
        raise ValueError(f"cnn needs (channels, height, width) input, the dataset gives {shape}")
    c, h, w = shape
    layers: list[nn.Module] = []
    for out in params.channels:
        layers += [nn.Conv2d(c, out, kernel_size=3, padding=1), nn.ReLU()]
        c = out
    layers += [nn.MaxPool2d(2), nn.Flatten()]
    flat = c * (h // 2) * (w // 2)
    layers += [nn.Linear(flat, params.hidden), nn.ReLU(), nn.Linear(params.hidden, data.outputs)]
    return nn.Sequential(*layers)


MLP = Model(name="mlp", description="multi-layer perceptron (Flatten, Linear+ReLU blocks)", build=build_mlp, params=MLPParams)
CNN = Model(name="cnn", description="small conv net: 3x3 conv blocks, max-pool, two Linear layers", build=build_cnn, params=CNNParams)


class LogRegParams(TrainableParams):
    pass


def build_logreg(params: LogRegParams, data: DatasetSplits) -> nn.Module:
    """Multinomial logistic regression: one Linear layer on the flattened input (convex)."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data.input_shape), data.outputs))


class ThetaParams(TrainableParams):
    init: float = Field(1.0, description="initial value of every entry of theta (DeepOBS: 1.0)")


def build_theta(params: ThetaParams, data: DatasetSplits) -> nn.Module:
    """A single parameter vector shaped like one input sample, returned for every input.

    The model of DeepOBS's quadratic problem: the dataset's objective compares it with
    each noise sample.
    """
    import torch
    from torch import nn

    class Theta(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.theta = nn.Parameter(torch.full(data.input_shape, float(params.init)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.theta.expand(x.shape[0], *self.theta.shape)

    return Theta()


LOGREG = Model(name="logreg", description="multinomial logistic regression (Flatten, one Linear layer): a convex problem",
               build=build_logreg, params=LogRegParams)
THETA = Model(name="theta", description="one learnable vector shaped like an input (the quadratic problem's model)",
              build=build_theta, params=ThetaParams)
