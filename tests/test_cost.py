"""Parameter and FLOP counters: analytic (from the arch) vs fvcore (on the extracted model)."""

from __future__ import annotations

import random

import pytest
import timm
from torch import nn

from hwnas import HwnasError, count_flops, count_params, get_space

from .conftest import perturbed_supernet


def test_deit_tiny_in_the_literature_convention():
    arch = get_space("autoformer-tiny").arch(embed_dim=192, depth=12, num_heads=[3] * 12, mlp_ratio=[4.0] * 12)
    assert count_params(arch) == 5_717_416
    assert count_flops(arch) == 1_253_683_200  # 1.25 GMACs, attention products included
    reference = timm.create_model("deit_tiny_patch16_224", pretrained=False)
    assert count_flops(reference) == count_flops(arch)  # fused SDPA counted, LayerNorm not


@pytest.mark.parametrize("name, n", [("autoformer-digits", 12), ("autoformer-tiny", 3)])
@pytest.mark.parametrize("fused", [True, False])
def test_fvcore_on_extracted_model_equals_analytic(name, n, fused):
    net = perturbed_supernet(name)
    rng = random.Random(0)
    for arch in [net.space.sample(rng) for _ in range(n)]:
        model = net.extract(arch)
        for block in model.blocks:
            block.attn.fused_attn = fused  # both attention paths count the same
        assert count_flops(model) == count_flops(arch)
        assert count_params(model) == count_params(arch)


def test_fvcore_count_is_not_blind_to_attention():
    """Attention products are ~14% of DeiT-Tiny: a counter that skips fused attention falls short."""
    arch = get_space("autoformer-tiny").smallest()
    attention = sum(2 * b.tokens**2 * b.qkv_dim for b in arch.blocks() if b.kind == "encoder")
    linear_only = sum(b.macs() for b in arch.blocks()) - attention
    model = perturbed_supernet("autoformer-tiny").extract(arch)
    assert count_flops(model) == linear_only + attention


def test_model_without_known_input_size():
    with pytest.raises(HwnasError, match="pass input_size"):
        count_flops(nn.Sequential(nn.Linear(4, 4)))
    assert count_flops(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), input_size=(1, 2, 2)) == 12
