"""Small ViT-style classifier: patch embedding, CLS token, pre-norm blocks with SDPA attention."""

from __future__ import annotations

from math import ceil, gcd, prod

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.registry import check_common, register, require_positive_int


class SelfAttention(nn.Module):
    """Multi-head self-attention through F.scaled_dot_product_attention, so the fused kernels (and the
    FLOP counter's SDPA handle) see one attention op rather than a chain of matmuls and a softmax."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        # (B, T, 3·W) -> three (B, heads, T, W / heads) tensors.
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class Block(nn.Module):
    """Pre-norm encoder block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        hidden = mlp_ratio * width
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _nearest_divisor(sizes: tuple[int, ...], wanted: int) -> int:
    """The patch size closest to `wanted` that divides every spatial size (ties: the smaller, more tokens)."""
    common = 0
    for size in sizes:
        common = gcd(common, size)
    divisors = [d for d in range(1, common + 1) if common % d == 0]
    useful = [d for d in divisors if d > 1] or divisors  # patch 1 works but is rarely what one wants
    return min(useful, key=lambda d: (abs(d - wanted), d))


@register("transformer")
class Transformer(nn.Module):
    """Non-overlapping patches of `patch_size` (images: squares, sequences (C, L): runs) become tokens;
    a learned CLS token and positional embedding join them; the head reads the CLS token.

    `width` is the embedding dimension, `depth` the number of encoder blocks. A flat input (features,) is
    read as a one-channel sequence (1, features).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int,
        depth: int,
        heads: int = 4,
        patch_size: int = 4,
        mlp_ratio: int = 2,
    ):
        super().__init__()
        check_common(input_shape, num_classes, width, depth)
        require_positive_int("model.heads", heads, 4)
        require_positive_int("model.patch_size", patch_size, 4)
        require_positive_int("model.mlp_ratio", mlp_ratio, 2)
        self.add_channel = len(input_shape) == 1
        if self.add_channel:
            input_shape = (1, *input_shape)
        if len(input_shape) not in (2, 3):
            raise ValueError(
                f"transformer needs input (features,), (C, L) or (C, H, W), got shape {tuple(input_shape)}; "
                "reshape the data to one of these or use model=mlp"
            )
        if width % heads:
            fitting_heads = max(h for h in range(1, heads) if width % h == 0)
            raise ValueError(
                f"model.heads={heads} must divide model.width={width}; "
                f"set e.g. model.width={heads * ceil(width / heads)} or model.heads={fitting_heads}"
            )
        spatial = tuple(input_shape[1:])
        if any(size % patch_size for size in spatial):
            raise ValueError(
                f"model.patch_size={patch_size} does not divide the input size {spatial}; "
                f"set e.g. model.patch_size={_nearest_divisor(spatial, patch_size)}"
            )
        conv = nn.Conv2d if len(spatial) == 2 else nn.Conv1d
        tokens = prod(size // patch_size for size in spatial)
        self.embed = conv(input_shape[0], width, patch_size, stride=patch_size)
        self.cls = nn.Parameter(torch.empty(1, 1, width))
        self.position = nn.Parameter(torch.empty(1, tokens + 1, width))
        nn.init.trunc_normal_(self.cls, std=0.02)  # ViT's small initialisation for learned embeddings
        nn.init.trunc_normal_(self.position, std=0.02)
        self.blocks = nn.Sequential(*(Block(width, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.add_channel:
            x = x.unsqueeze(1)
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, width, *grid) -> (B, patches, width)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.position
        return self.head(self.norm(self.blocks(tokens))[:, 0])
