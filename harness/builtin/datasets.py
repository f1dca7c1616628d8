"""Built-in datasets: scikit-learn's bundled digits and synthetic tensors.

Nothing is downloaded: digits ships inside scikit-learn (its split is cached), synthetic is generated.
"""
from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from harness.plugin.cache_root import cache_root
from harness.plugin.types import Dataset, DatasetSplits, Params


class DigitsParams(Params):
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="held-out share, stratified by class")


def load_digits(params: DigitsParams, seed: int) -> DatasetSplits:
    """8x8 grey-scale digits (1,797 images, 10 classes) as (N, 1, 8, 8) floats in [0, 1].

    The stratified split depends only on the seed, so every cell and every run with
    the same seed sees the same train and test images.
    """
    import torch

    split = _digits_split(params.test_fraction, seed)
    return DatasetSplits(
        x_train=torch.from_numpy(split["x_train"]),
        y_train=torch.from_numpy(split["y_train"]),
        x_test=torch.from_numpy(split["x_test"]),
        y_test=torch.from_numpy(split["y_test"]),
        num_classes=10,
    )


DIGITS_SPLITS = ("x_train", "x_test", "y_train", "y_test")


def _digits_split(test_fraction: float, seed: int) -> dict[str, Any]:
    """scikit-learn's stratified split of its digits, made once per seed, fraction and scikit-learn
    version and kept in the cache (``datasets/``): importing scikit-learn takes about 2 s, which every
    run's cell processes paid before. A missing or unreadable file is made again."""
    import importlib.metadata
    import zipfile

    import numpy as np

    path = cache_root() / "datasets" / (f"digits-sklearn{importlib.metadata.version('scikit-learn')}"
                                        f"-seed{seed}-test{test_fraction!r}.npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            split = {k: f[k] for k in DIGITS_SPLITS}
        if split["x_train"].dtype == np.float32 and split["y_train"].dtype == np.int64 \
                and split["x_train"].shape[1:] == (1, 8, 8) and len(split["x_train"]) == len(split["y_train"]):
            return split
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype("float32")[:, None, :, :]
    y = bunch.target.astype("int64")
    split = dict(zip(DIGITS_SPLITS, train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed),
                     strict=True))
    try:  # written whole under a temporary name, then renamed: a reader never sees half a file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **split)
        os.replace(tmp, path)
    except OSError:  # a read-only cache: made again next time
        pass
    return split


class SyntheticParams(Params):
    shape: list[int] = Field([3, 32, 32], min_length=1, description="shape of one input sample")
    classes: int = Field(10, ge=2, le=100_000, description="number of output classes")
    samples: int = Field(256, ge=1, le=1_000_000, description="samples in each split")


def load_synthetic(params: SyntheticParams, seed: int) -> DatasetSplits:
    """Random normal input of a declared shape, for speed-only benchmarks.

    There are no meaningful labels, so models are not trained on it and accuracy is
    reported as null instead of a chance-level number.
    """
    import torch

    if any(d < 1 for d in params.shape):
        raise ValueError(f"synthetic shape must be positive, got {params.shape}")
    g = torch.Generator().manual_seed(seed)
    x_train = torch.randn(params.samples, *params.shape, generator=g)
    x_test = torch.randn(params.samples, *params.shape, generator=g)
    return DatasetSplits(x_train=x_train, y_train=None, x_test=x_test, y_test=None, num_classes=params.classes)


class QuadraticParams(Params):
    dim: int = Field(100, ge=2, le=10_000, description="dimension of theta and of each noise sample")
    samples: int = Field(1000, ge=2, le=1_000_000, description="noise samples in each split")
    small: int = Field(90, ge=0, description="eigenvalues drawn from U(0, 1); the rest from U(30, 60)")
    hessian_seed: int = Field(42, ge=0, description="seed of the Hessian (fixed, like DeepOBS's)")


def load_quadratic(params: QuadraticParams, seed: int) -> DatasetSplits:
    """DeepOBS's quadratic_deep: loss(theta, x) = 0.5 (theta - x)^T Q (theta - x), x ~ N(0, I).

    Q = R diag(eigenvalues) R^T with a random rotation R and, of ``dim`` eigenvalues,
    ``small`` from U(0, 1) and the rest from U(30, 60) (badly conditioned on purpose).
    Q comes from ``hessian_seed`` and is the same for every seed; the noise samples come
    from the cell's seed. The training objective is minimised by theta = the mean of the
    training samples, so its floor is known exactly and recorded as ``loss_floor``.
    """
    import torch

    if params.small > params.dim:
        raise ValueError(f"small ({params.small}) cannot exceed dim ({params.dim})")
    gq = torch.Generator().manual_seed(params.hessian_seed)
    eig = torch.cat([torch.rand(params.small, generator=gq, dtype=torch.float64),
                     30 + 30 * torch.rand(params.dim - params.small, generator=gq, dtype=torch.float64)])
    rot, _ = torch.linalg.qr(torch.randn(params.dim, params.dim, generator=gq, dtype=torch.float64))
    q64 = rot @ torch.diag(eig) @ rot.T
    q64 = 0.5 * (q64 + q64.T)
    g = torch.Generator().manual_seed(seed)
    x_train = torch.randn(params.samples, params.dim, generator=g, dtype=torch.float64)
    x_test = torch.randn(params.samples, params.dim, generator=g, dtype=torch.float64)
    centred = x_train - x_train.mean(dim=0)
    floor = float(0.5 * torch.einsum("bi,ij,bj->b", centred, q64, centred).mean())
    q = q64.float()

    def objective(output: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        d = output - x
        return 0.5 * ((d @ q.to(d.device)) * d).sum(dim=1).mean()

    return DatasetSplits(x_train=x_train.float(), y_train=None, x_test=x_test.float(), y_test=None,
                         num_classes=0, objective=objective, loss_floor=floor)


DIGITS = Dataset(
    name="digits",
    description="scikit-learn's bundled 8x8 handwritten digits, stratified train/test split",
    load=load_digits,
    params=DigitsParams,
)
SYNTHETIC = Dataset(
    name="synthetic",
    description="random tensors of a declared shape and class count (no accuracy)",
    load=load_synthetic,
    params=SyntheticParams,
)
QUADRATIC = Dataset(
    name="quadratic",
    description="DeepOBS quadratic_deep: 0.5 (theta - x)^T Q (theta - x), ill-conditioned Q, known loss floor "
    "(pair with the theta model)",
    load=load_quadratic,
    params=QuadraticParams,
)
