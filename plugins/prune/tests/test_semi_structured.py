"""prune.semi_structured: 2:4 masks are right everywhere; the sparse kernels only on CUDA sm80+."""
from __future__ import annotations

import copy

import pydantic
import pytest
import torch
from optbench_prune.semi_structured import fits, mask_2_4
from torch import nn

from harness import NoParams, Skip

REASON = "2:4 semi-structured sparsity needs a CUDA GPU with compute capability >= 8.0; this cell runs on cpu"


def test_skips_on_cpu_with_the_reason(trained, run_method):
    with pytest.raises(Skip) as info:
        run_method("prune.semi_structured", trained("mlp"))
    assert str(info.value) == REASON


@pytest.mark.parametrize("shape", [(8, 16), (3, 64), (2, 3, 4)])
def test_mask_keeps_exactly_the_two_largest_of_every_four_along_the_last_dim(shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    keep = mask_2_4(w)
    assert keep.dtype == torch.bool and keep.shape == w.shape
    groups, kept = w.abs().reshape(-1, 4), keep.reshape(-1, 4)
    assert torch.all(kept.sum(1) == 2)
    # every kept |w| is at least every dropped |w| of its group
    smallest_kept = torch.where(kept, groups, torch.inf).min(1).values
    largest_dropped = torch.where(kept, -torch.inf, groups).max(1).values
    assert torch.all(smallest_kept >= largest_dropped)
    masked = w * keep
    assert torch.all((masked.reshape(-1, 4) != 0).sum(1) == 2)


def test_mask_on_a_known_example():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, -1.0, 1.5, -0.2, 0.3]])
    assert mask_2_4(w).tolist() == [[False, True, True, False, True, True, False, False]]


def test_mask_groups_run_along_the_input_dimension_of_a_linear_weight():
    w = torch.tensor([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0]])  # (out=2, in=4)
    assert mask_2_4(w).tolist() == [[True, True, False, False], [False, False, True, True]]


def test_mask_rejects_a_dimension_not_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        mask_2_4(torch.randn(4, 6))


def test_float32_shape_constraints_are_multiples_of_32():
    assert fits(torch.empty(128, 64)) is None
    assert "(32, 32)" in fits(torch.empty(10, 128))  # a 10-class classifier stays dense
    assert "(32, 32)" in fits(torch.empty(64, 48))
    assert "3-D" in fits(torch.empty(32, 32, 1))


def test_takes_no_params():
    with pytest.raises(pydantic.ValidationError):
        NoParams(n=2, m=4)


def _sm80() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


@pytest.mark.gpu
@pytest.mark.skipif(not _sm80(), reason="needs a CUDA GPU with compute capability >= 8.0")
def test_on_an_ampere_gpu_fitting_linears_become_2_4_sparse_and_match_the_masked_dense_model(run_method, optbench_digits):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for layer in (reference[1], reference[3]):
            layer.weight.mul_(mask_2_4(layer.weight))
    cuda = torch.device("cuda")
    logs: list[str] = []
    pruned = run_method("prune.semi_structured", model, device=cuda, logs=logs)
    assert isinstance(pruned[1].weight, torch.sparse.SparseSemiStructuredTensor)
    assert isinstance(pruned[3].weight, torch.sparse.SparseSemiStructuredTensor)
    assert not isinstance(pruned[5].weight, torch.sparse.SparseSemiStructuredTensor)
    assert "left dense: 5" in logs[0]
    x = optbench_digits.x_test[:64].to(cuda)
    with torch.inference_mode():
        torch.testing.assert_close(pruned(x), reference.to(cuda)(x), atol=1e-2, rtol=1e-2)
