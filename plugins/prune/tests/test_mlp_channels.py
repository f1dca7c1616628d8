"""prune.mlp_channels: a Llama MLP loses the least important intermediate channels and stays exact on
the channels it keeps."""
from __future__ import annotations

import pytest
import torch
from optbench_prune.mlp_channels import MLPChannelParams, mlp_blocks, prune_mlp_channels


def llama():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=32)
    return transformers.LlamaForCausalLM(config).eval()


def test_every_mlp_block_shrinks_to_the_kept_width_and_still_runs():
    model = llama()
    assert len(mlp_blocks(model)) == 2
    blocks, before, after = prune_mlp_channels(model, MLPChannelParams(ratio=0.5, multiple_of=8))
    assert (blocks, before, after) == (2, 192, 96)
    mlp = model.model.layers[0].mlp
    assert mlp.gate_proj.out_features == mlp.up_proj.out_features == mlp.down_proj.in_features == 48
    logits = model(torch.randint(0, 64, (2, 7))).logits
    assert logits.shape == (2, 7, 64) and torch.isfinite(logits).all()


def test_channels_with_no_weight_are_the_ones_removed_and_the_output_is_unchanged():
    model = llama()
    mlp = model.model.layers[1].mlp
    with torch.no_grad():  # channels 0..47 do nothing: their rows and column are zero
        for layer in (mlp.gate_proj, mlp.up_proj):
            layer.weight[:48] = 0
        mlp.down_proj.weight[:, :48] = 0
    x = torch.randn(3, 32)
    want = mlp(x)
    prune_mlp_channels(model.model.layers[1], MLPChannelParams(ratio=0.5, multiple_of=1))
    assert torch.allclose(model.model.layers[1].mlp(x), want, atol=1e-6)


def test_a_model_without_mlp_blocks_is_skipped():
    from optbench_prune.mlp_channels import apply

    from harness import Skip

    with pytest.raises(Skip, match="no transformer MLP block"):
        apply(torch.nn.Sequential(torch.nn.Linear(4, 4)), MLPChannelParams(), None)
