"""prune.mlp_channels and prune.attention_heads: a Llama's MLP loses its least important intermediate
channels, its attention its least important key/value heads (with their query heads), and what is
kept computes what it did."""
from __future__ import annotations

import pytest
import torch
from optbench_prune.transformer_pruning import (
    AttentionHeadParams,
    MLPChannelParams,
    mlp_blocks,
    prune_attention_heads,
    prune_mlp_channels,
)


def llama(kv_heads: int = 4):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=32)
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
    from optbench_prune.transformer_pruning import apply

    from harness import Skip

    with pytest.raises(Skip, match="no transformer MLP block"):
        apply(torch.nn.Sequential(torch.nn.Linear(4, 4)), MLPChannelParams(), None)


@pytest.mark.parametrize("kv_heads", [4, 2])  # plain multi-head, and grouped-query with 2 query heads per group
def test_attention_heads_are_removed_with_their_query_heads_and_the_model_still_generates(kv_heads):
    model = llama(kv_heads)
    blocks, before, after = prune_attention_heads(model, AttentionHeadParams(ratio=0.5))
    assert (blocks, before, after) == (2, 2 * kv_heads, kv_heads)
    attn = model.model.layers[0].self_attn
    assert attn.k_proj.out_features == attn.v_proj.out_features == kv_heads // 2 * 8
    assert attn.q_proj.out_features == attn.o_proj.in_features == 2 * 8  # 4 query heads of 8 -> 2
    out = model.generate(torch.randint(1, 64, (2, 5)), max_new_tokens=4, min_new_tokens=4, do_sample=False,
                         pad_token_id=0)
    assert out.shape == (2, 9)


def test_a_head_with_no_weight_is_the_one_removed_and_attention_is_unchanged():
    model = llama(4)
    attn = model.model.layers[0].self_attn
    with torch.no_grad():  # head 2 does nothing: its query/key/value rows and output columns are zero
        for layer in (attn.q_proj, attn.k_proj, attn.v_proj):
            layer.weight[16:24] = 0
        attn.o_proj.weight[:, 16:24] = 0
    ids = torch.randint(1, 64, (1, 6))
    want = model(ids).logits
    prune_attention_heads(model.model.layers[0], AttentionHeadParams(ratio=0.25))
    assert torch.allclose(model(ids).logits, want, atol=1e-5)
