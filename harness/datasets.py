"""Built-in datasets: scikit-learn's bundled digits and synthetic tensors.

Nothing is downloaded: digits ships inside scikit-learn, synthetic is generated.
"""
from __future__ import annotations

from pydantic import Field

from harness.plugin_types import Dataset, DatasetSplits, Params


class DigitsParams(Params):
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="held-out share, stratified by class")


def load_digits(params: DigitsParams, seed: int) -> DatasetSplits:
    """8x8 grey-scale digits (1,797 images, 10 classes) as (N, 1, 8, 8) floats in [0, 1].

    The stratified split depends only on the seed, so every cell and every run with
    the same seed sees the same train and test images.
    """
    import torch
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype("float32")[:, None, :, :]
    y = bunch.target.astype("int64")
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=params.test_fraction, stratify=y, random_state=seed
    )
    return DatasetSplits(
        x_train=torch.from_numpy(x_tr),
        y_train=torch.from_numpy(y_tr),
        x_test=torch.from_numpy(x_te),
        y_test=torch.from_numpy(y_te),
        num_classes=10,
    )


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
