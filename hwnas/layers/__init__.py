"""Layers shared by the families, as timm keeps its `layers/`: the single-stage ViT's static layers
(`hwnas.layers.vit`: torch), their elastic versions for the supernets (`hwnas.layers.elastic`) and
their block kinds (`hwnas.layers.block_kinds`: torch-free, registered when this package is
imported, so that any table row of theirs resolves)."""

from hwnas.layers import block_kinds  # noqa: F401  (registers patch_embed, encoder and head)
