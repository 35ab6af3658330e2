"""Weight entanglement, slicing rules and exact subnet extraction."""

from __future__ import annotations

import random

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from hwnas import ArchError, build_supernet, get_space, list_spaces
from hwnas.families.registry import timm_kwargs
from hwnas.layers.elastic import ElasticAttention, ElasticLayer, ElasticLayerNorm, ElasticLinear, leading, take

from .conftest import perturbed_supernet

TOL = 1e-5


def test_linear_uses_leading_slice():
    layer = ElasticLinear(16, 12)
    x = torch.randn(3, 8)
    expected = F.linear(x, layer.weight[:5, :8], layer.bias[:5])
    assert torch.equal(layer(x, leading(8), leading(5)), expected)
    # An index set equal to the prefix selects the same weights (the path cyclic sharing uses).
    assert torch.equal(layer(x, torch.arange(8), torch.arange(5)), expected)
    static = torch.nn.Linear(8, 5)
    static.load_state_dict(layer.active_state(leading(8), leading(5)))
    assert static.weight.shape == (5, 8) and torch.equal(static(x), expected)


def test_layernorm_normalises_active_channels_only():
    norm = ElasticLayerNorm(10)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.normal_()
    x = torch.randn(4, 6)
    expected = F.layer_norm(x, (6,), norm.weight[:6], norm.bias[:6], norm.eps)
    assert torch.equal(norm(x, leading(6)), expected)
    static = torch.nn.LayerNorm(6, eps=norm.eps)
    static.load_state_dict(norm.active_state(leading(6)))
    assert torch.allclose(static(x), expected, atol=1e-6)


def test_qkv_weight_and_bias_use_the_same_rows():
    """AutoFormer's released code slices qkv weight rows strided but the bias contiguously (Cream#121)."""
    attn = ElasticAttention(max_dim=12, max_heads=4, head_dim=2)  # q, k, v sections of 8 rows each
    with torch.no_grad():
        attn.qkv.bias.copy_(torch.arange(24.0))
        attn.qkv.weight.copy_(torch.arange(24.0)[:, None].expand(24, 12))
    weight, bias = attn.active_qkv(leading(6), num_heads=3)
    rows = torch.tensor([0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21], dtype=torch.float)
    assert torch.equal(bias, rows)
    assert torch.equal(weight[:, 0], rows) and weight.shape == (18, 6)


def test_gradients_touch_only_the_active_slice():
    net = build_supernet(get_space("autoformer-digits"))
    arch = get_space("autoformer-digits").smallest()  # 64 wide, 4 layers, 2 heads of 32, ratio 2
    net(torch.randn(2, 3, 32, 32), arch).sum().backward()
    fc1 = net.blocks[0].mlp.fc1.weight.grad
    assert fc1[:128, :64].abs().sum() > 0 and fc1[128:].abs().sum() == 0 and fc1[:, 64:].abs().sum() == 0
    qkv = net.blocks[0].attn.qkv.weight.grad.view(3, 96, 96)
    assert qkv[:, :64, :64].abs().sum() > 0 and qkv[:, 64:].abs().sum() == 0
    assert net.blocks[4].attn.qkv.weight.grad is None  # layers past the arch's depth are skipped
    assert net.patch_embed.proj.weight.grad[64:].abs().sum() == 0


def test_forward_keeps_no_state_between_calls(digits_supernet):
    space = digits_supernet.space
    a, b = space.smallest(), space.largest()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first = digits_supernet(x, a)
        digits_supernet(x, b)
        assert torch.equal(digits_supernet(x, a), first)


def _max_diff(net, arch, batch: int = 2) -> float:
    size = net.space.spec.img_size
    x = torch.randn(batch, net.space.spec.in_chans, size, size)
    model = net.extract(arch).eval()
    with torch.no_grad():
        return (net(x, arch) - model(x)).abs().max().item()


def test_extraction_equivalence_many_digits_archs(digits_supernet):
    space = digits_supernet.space
    rng = random.Random(0)
    archs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(30)]
    for arch in archs:
        assert _max_diff(digits_supernet, arch, batch=4) <= TOL, arch


# (resnas-small is resnas-tiny's code with a seventh slot per stage, at twice the build time)
@pytest.mark.parametrize("name", [n for n in list_spaces() if n not in ("autoformer-digits", "resnas-small")])
def test_extraction_equivalence_every_space(name):
    net = perturbed_supernet(name)
    space = net.space
    rng = random.Random(1)
    for arch in [space.smallest(), space.largest(), space.sample(rng), space.sample(rng)]:
        assert _max_diff(net, arch, batch=1) <= TOL, arch


@pytest.mark.parametrize("name", ["autoformer-digits", "vitas-digits", "glit-digits", "resnas-digits", "resnas-tiny"])
def test_every_elastic_layer_is_its_active_static_layer(name):
    """Each layer a subnet runs, given as its static layer (`get_active_subnet`), computes what the
    elastic layer computed on the same input with the same choice; its static class is the one the
    family's static model uses there (so the layer and the builder agree, not only the weights)."""
    net = perturbed_supernet(name)
    arch = net.space.sample(random.Random(2))
    static_model = net.extract(arch)
    seen: dict[str, tuple] = {}
    modules = dict(net.named_modules())
    hooks = [
        modules[path].register_forward_hook(lambda m, args, out, path=path: seen.update({path: (args, out)}))
        for path, layer in net.layer_choices(arch).items()
        if isinstance(modules.get(path), ElasticLayer)
    ]
    x = torch.randn(2, 3, net.space.spec.img_size, net.space.spec.img_size)
    with torch.no_grad():
        net(x, arch)
        for hook in hooks:
            hook.remove()
        assert len(seen) >= 3
        for path, ((inputs, *choice), out) in seen.items():
            layer = net.get_submodule(path).get_active_subnet(*choice)
            name_in_model = net.layer_choices(arch)[path].name or path
            assert type(layer) is type(static_model.get_submodule(name_in_model)), path
            assert layer.training == net.training
            assert torch.allclose(layer(inputs), out, atol=TOL), path


def test_extracted_model_is_static_timm_vit_with_copied_weights(digits_supernet):
    arch = digits_supernet.space.sample(3)
    model = digits_supernet.extract(arch).eval()
    assert isinstance(model, VisionTransformer)
    assert sum(p.numel() for p in model.parameters()) == arch.params()
    supernet_storage = {p.untyped_storage().data_ptr() for p in digits_supernet.parameters()}
    assert not any(p.untyped_storage().data_ptr() in supernet_storage for p in model.parameters())
    x = torch.randn(2, 3, 32, 32)
    source = perturbed_supernet("autoformer-digits", seed=1)
    model = source.extract(arch).eval()
    with torch.no_grad():
        before = model(x)
        for p in source.parameters():  # the very supernet it was copied from changes: the copy must not follow
            p.mul_(-1.5)
        assert torch.equal(model(x), before)
        assert not torch.allclose(source(x, arch), before)


def test_deit_tiny_parity_with_timm():
    space = get_space("autoformer-tiny")
    arch = space.arch(embed_dim=192, depth=12, num_heads=[3] * 12, mlp_ratio=[4.0] * 12)
    model = perturbed_supernet("autoformer-tiny").extract(arch).eval()
    reference = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    assert isinstance(model, VisionTransformer)
    n = sum(p.numel() for p in model.parameters())
    assert n == sum(p.numel() for p in reference.parameters()) == arch.params() == 5_717_416
    reference.load_state_dict(model.state_dict(), strict=True)  # same names, same shapes
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= TOL
    # timm can build the same network from the arch alone.
    kwargs = timm_kwargs(arch)
    rebuilt = timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs)
    rebuilt.load_state_dict(model.state_dict(), strict=True)


def test_timm_kwargs_only_for_plain_vits():
    space = get_space("autoformer-tiny")
    assert (
        timm_kwargs(space.arch(embed_dim=216, depth=12, num_heads=[3] * 12, mlp_ratio=[4.0] * 12)) is None
    )  # qkv 192 != 216
    assert timm_kwargs(space.arch(embed_dim=192, depth=12, num_heads=[3] * 11 + [4], mlp_ratio=[4.0] * 12)) is None


def test_arch_from_another_space_is_refused(digits_supernet):
    other = get_space("autoformer-tiny").smallest()
    with pytest.raises(ArchError, match="arch is from space autoformer-tiny but this supernet is autoformer-digits"):
        digits_supernet(torch.randn(1, 3, 32, 32), other)
    with pytest.raises(ArchError, match="expected an Arch"):
        digits_supernet.extract({"embed_dim": 64})  # type: ignore[arg-type]


def test_take_gathers_index_sets():
    t = torch.arange(10.0)
    assert torch.equal(take(t, 0, torch.tensor([8, 9, 0])), torch.tensor([8.0, 9.0, 0.0]))
    assert torch.equal(take(t, 0, leading(3)), torch.tensor([0.0, 1.0, 2.0]))


def test_cyclic_sharing_balances_channels_and_extracts_exactly():
    from hwnas.supernet.sharing import ChannelSharing

    prefix, cyclic = ChannelSharing([64, 80, 96], "prefix"), ChannelSharing([64, 80, 96], "cyclic")
    assert prefix.balance() == 3.0 and cyclic.balance() == 1.5  # digits: last 16 channels serve 1 width vs 2
    assert torch.equal(cyclic.select(80), (torch.arange(80) + 64) % 96) and cyclic.select(96) == slice(0, 96)
    assert cyclic.usage().sum() == prefix.usage().sum() == 64 + 80 + 96
    net = perturbed_supernet("autoformer-digits", weight_sharing="cyclic")
    space = net.space
    rng = random.Random(2)
    for arch in [space.smallest(), space.largest(), *(space.sample(rng) for _ in range(10))]:
        assert _max_diff(net, arch, batch=4) <= TOL, arch
    # width 80 inherits other channels under cyclic sharing (64 starts at 0 both ways)
    x = torch.randn(2, 3, 32, 32)
    prefix_net = perturbed_supernet("autoformer-digits")
    with torch.no_grad():
        assert torch.equal(net(x, space.smallest()), prefix_net(x, space.smallest()))
        assert not torch.allclose(net(x, space.middle()), prefix_net(x, space.middle()))
