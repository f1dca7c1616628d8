"""Per-layer k-means weight sharing (the clustering step of Deep Compression).

Each Linear/Conv weight tensor is clustered into k = 2**bits values by 1-D k-means;
every weight is replaced by its cluster's centroid. The model keeps float32 tensors so
it runs with ordinary kernels; what shrinks is the storage a codebook format would
need: k float32 centroids plus one ``bits``-bit index per weight. That size is reported
with ``ctx.report(model_bytes=..., bits_per_param=...)``, since the serialized
state_dict of the simulated model is as large as the baseline's.

torch imports stay inside functions: this module is imported at plugin discovery.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import MethodContext, Params, Skip

if TYPE_CHECKING:
    import torch
    from torch import nn

CODEBOOK_ENTRY_BYTES = 4  # float32 centroids


class KMeansParams(Params):
    bits: int = Field(5, ge=1, le=8, description="index width; each layer gets k = 2**bits shared values")
    init: Literal["linear", "kmeans++"] = Field(
        "linear",
        description="centroid initialisation: linear = evenly spaced over [min, max] of the layer "
        "(Deep Compression's choice), kmeans++ = seeded D^2 sampling",
    )
    iters: int = Field(
        20, ge=0, le=1000, description="maximum k-means iterations (0 keeps the initial centroids)"
    )


def shared_layers(model: nn.Module) -> list[nn.Module]:
    """Modules whose ``weight`` is clustered: nn.Linear and every nn.ConvNd/ConvTransposeNd.

    Shared (tied) weights are clustered once.
    """
    from torch import nn

    seen: set[int] = set()
    out = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            w = getattr(module, "weight", None)
            if isinstance(w, nn.Parameter) and w.is_floating_point() and id(w) not in seen:
                seen.add(id(w))
                out.append(module)
    return out


def init_centroids(
    values: torch.Tensor, k: int, init: str, generator: torch.Generator
) -> torch.Tensor:
    """k sorted initial centroids (float64) for 1-D ``values``."""
    import torch

    lo, hi = float(values.min()), float(values.max())
    if init == "linear":
        return torch.linspace(lo, hi, k, dtype=torch.float64)
    # k-means++: the first centroid uniformly, then each next one with probability
    # proportional to the squared distance to the nearest chosen centroid.
    n = values.numel()
    chosen = [float(values[int(torch.randint(n, (1,), generator=generator))])]
    d2 = (values - chosen[0]).square()
    for _ in range(1, k):
        total = float(d2.sum())
        if total == 0.0:  # fewer distinct values than k: repeat the last centroid
            chosen.append(chosen[-1])
            continue
        idx = int(torch.multinomial(d2 / total, 1, generator=generator))
        chosen.append(float(values[idx]))
        d2 = torch.minimum(d2, (values - chosen[-1]).square())
    return torch.tensor(sorted(chosen), dtype=torch.float64)


def assign(values: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid for each value (centroids sorted ascending).

    In one dimension the nearest centroid is found by bisecting the midpoints between
    neighbours: O(n log k) time and O(n) memory, never an n x k distance matrix.
    """
    import torch

    midpoints = (centroids[1:] + centroids[:-1]) / 2
    return torch.bucketize(values, midpoints)


def kmeans_1d(
    values: torch.Tensor, k: int, *, init: str, iters: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(centroids, assignment, iterations run) of Lloyd's k-means on 1-D ``values``.

    Empty clusters keep their centroid. Stops early when no assignment changes.
    """
    import torch

    x = values.detach().reshape(-1).double()
    centroids = init_centroids(x, k, init, generator)
    idx = assign(x, centroids)
    done = 0
    for done in range(1, iters + 1):
        counts = torch.bincount(idx, minlength=k)
        sums = torch.bincount(idx, weights=x, minlength=k)
        filled = counts > 0
        centroids = torch.where(filled, sums / counts.clamp(min=1), centroids)
        # 1-D Lloyd steps keep the order, but re-sort so bisection stays valid under float ties
        centroids, _ = torch.sort(centroids)
        new_idx = assign(x, centroids)
        if torch.equal(new_idx, idx):
            idx = new_idx
            break
        idx = new_idx
    return centroids, idx, done


@dataclass
class Storage:
    """Effective bytes of a weight-shared model in a codebook format."""

    model_bytes: int
    params: int
    shared_weights: int  # elements stored as indices

    @property
    def bits_per_param(self) -> float:
        return self.model_bytes * 8 / self.params if self.params else 0.0


def codebook_bytes(numel: int, bits: int) -> int:
    """One layer: 2**bits float32 centroids plus numel indices packed at ``bits`` bits."""
    return (2**bits) * CODEBOOK_ENTRY_BYTES + math.ceil(numel * bits / 8)


def storage(model: nn.Module, shared: list[nn.Module], bits: int) -> Storage:
    """Codebook bytes for the shared weights, real bytes for every other parameter and buffer."""
    shared_ids = {id(m.weight) for m in shared}
    total_bytes = 0
    params = 0
    shared_numel = 0
    for p in model.parameters():  # unique tensors, tied ones once
        params += p.numel()
        if id(p) in shared_ids:
            total_bytes += codebook_bytes(p.numel(), bits)
            shared_numel += p.numel()
        else:
            total_bytes += p.numel() * p.element_size()
    for b in model.buffers():
        total_bytes += b.numel() * b.element_size()
    return Storage(total_bytes, params, shared_numel)


def share_weights(model: nn.Module, params: KMeansParams, seed: int) -> tuple[list[nn.Module], list[float]]:
    """Cluster every shared layer in place; returns the layers and each one's mean squared error."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    layers = shared_layers(model)
    k = 2**params.bits
    errors = []
    with torch.no_grad():
        for layer in layers:
            w = layer.weight
            centroids, idx, _ = kmeans_1d(w, k, init=params.init, iters=params.iters, generator=generator)
            quantized = centroids[idx].to(w.dtype).reshape(w.shape)
            errors.append(float((quantized.double() - w.double()).square().mean()))
            w.copy_(quantized)
    return layers, errors


def apply(model: nn.Module, params: KMeansParams, ctx: MethodContext) -> nn.Module:
    layers, errors = share_weights(model, params, ctx.seed)
    if not layers:
        raise Skip.no_layers("share.kmeans", "nn.Linear/nn.Conv", model)
    size = storage(model, layers, params.bits)
    ctx.report(model_bytes=size.model_bytes, bits_per_param=size.bits_per_param)
    ctx.log(
        f"share.kmeans: {len(layers)} layer(s), {size.shared_weights} weights in codebooks of "
        f"{2**params.bits} ({params.init} init, <= {params.iters} iters); "
        f"effective size {size.model_bytes} bytes, {size.bits_per_param:.2f} bits/param; "
        f"worst layer MSE {max(errors, default=0.0):.3g}"
    )
    return model
