"""The detector network in torch (no torchvision): small CenterNet-style, anchor-free, NMS-free.

Layout: a plain residual conv backbone (strides 2..32), a top-down feature
pyramid summed down to the output stride (4 or 8), one shared 3x3 head conv,
then a class heatmap (``C`` logits per cell) and a box head (distances from the
cell centre to the four box sides, in network-input pixels).

Decoding is part of the graph so every backend gets the same static outputs:
class-agnostic peak picking (channel max, 3x3 max-pool equality) and TopK give
``boxes[1,K,4]`` (x1, y1, x2, y2 in network-input pixels), ``scores[1,K]`` and
``classes[1,K]`` (int32). One peak per object replaces NMS. Only standard ONNX
ops result (Conv, Relu, Add, Resize, ReduceMax, ArgMax, Sigmoid, MaxPool,
Equal, Cast, Mul, TopK, Gather, GatherElements, Softplus...).

This module imports torch at import time; only training, export and the torch
backend import it, lazily.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torch import nn

from sorter.detect.spec import ModelSpec

#: Box distances are ``softplus(raw) * DIST_SCALE_PX`` (network-input pixels).
DIST_SCALE_PX = 16.0
#: Initial heatmap bias: sigmoid(-4.6) ~ 0.01 prior, the usual focal-loss start.
HEAT_PRIOR_BIAS = -4.6


class ConvBNAct(nn.Module):
    """Conv -> BatchNorm -> ReLU (BN folded into the conv bias for export)."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(c_out)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y) if self.act else y


class ResBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = ConvBNAct(c, c, 3)
        self.b = ConvBNAct(c, c, 3, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class PeakDecoder(nn.Module):
    """In-graph decoding: class-agnostic 3x3 peaks and TopK (static shapes, batch 1 or more)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.top_k = spec.top_k
        s = float(spec.out_stride)
        ys, xs = torch.meshgrid(torch.arange(spec.heatmap_h), torch.arange(spec.heatmap_w), indexing="ij")
        # cell centres in network-input pixels; not in the state dict (derived from the spec)
        self.cell_x: torch.Tensor
        self.cell_y: torch.Tensor
        self.register_buffer("cell_x", ((xs.reshape(-1).float() + 0.5) * s), persistent=False)
        self.register_buffer("cell_y", ((ys.reshape(-1).float() + 0.5) * s), persistent=False)

    def forward(self, heat_logits: torch.Tensor, dist_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode raw maps.

        Args:
            heat_logits: ``(B, C, h, w)`` class logits.
            dist_px: ``(B, 4, h, w)`` distances left, top, right, bottom in input pixels.

        Returns:
            ``boxes (B, K, 4)`` float, ``scores (B, K)`` float in [0, 1], ``classes (B, K)`` int32.
        """
        b = int(heat_logits.shape[0])
        best, cls = torch.max(heat_logits, dim=1, keepdim=True)  # ReduceMax + ArgMax, (B,1,h,w)
        score = torch.sigmoid(best)
        peak = F.max_pool2d(score, 3, 1, 1)
        keep = (peak == score).to(score.dtype)
        flat = (score * keep).reshape(b, -1)
        scores, idx = torch.topk(flat, self.top_k, dim=1)  # (B, K)
        classes = torch.gather(cls.reshape(b, -1), 1, idx).to(torch.int32)
        d = torch.gather(dist_px.reshape(b, 4, -1), 2, idx.unsqueeze(1).expand(b, 4, self.top_k))  # (B,4,K)
        cx = self.cell_x[idx]
        cy = self.cell_y[idx]
        boxes = torch.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], dim=2)
        return boxes, scores, classes


class CenterNet(nn.Module):
    """The whole detector. ``forward`` returns decoded outputs; ``forward_raw`` the maps for training."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        c = spec.width
        m = 2 * c
        self.stem = ConvBNAct(3, c, 3, 2)
        self.s4 = nn.Sequential(ConvBNAct(c, 2 * c, 3, 2), ResBlock(2 * c))
        self.s8 = nn.Sequential(ConvBNAct(2 * c, 4 * c, 3, 2), ResBlock(4 * c))
        self.s16 = nn.Sequential(ConvBNAct(4 * c, 8 * c, 3, 2), ResBlock(8 * c))
        self.s32 = nn.Sequential(ConvBNAct(8 * c, 8 * c, 3, 2), ResBlock(8 * c))
        self.lat32 = ConvBNAct(8 * c, m, 1)
        self.lat16 = ConvBNAct(8 * c, m, 1)
        self.lat8 = ConvBNAct(4 * c, m, 1)
        self.lat4: nn.Module = ConvBNAct(2 * c, m, 1) if spec.out_stride == 4 else nn.Identity()
        self.smooth = ConvBNAct(m, m, 3)
        self.head = ConvBNAct(m, m, 3)
        self.heat = nn.Conv2d(m, spec.num_classes, 1)
        self.box = nn.Conv2d(m, 4, 1)
        assert self.heat.bias is not None and self.box.bias is not None
        nn.init.constant_(self.heat.bias, HEAT_PRIOR_BIAS)
        nn.init.normal_(self.box.weight, std=0.01)
        nn.init.constant_(self.box.bias, 0.0)
        self.decoder = PeakDecoder(spec)

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw maps: ``heat_logits (B, C, h, w)`` and ``dist_px (B, 4, h, w)`` (input pixels)."""
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        p = self.lat32(f32)
        p = F.interpolate(p, scale_factor=2.0, mode="nearest") + self.lat16(f16)
        p = F.interpolate(p, scale_factor=2.0, mode="nearest") + self.lat8(f8)
        if self.spec.out_stride == 4:
            p = F.interpolate(p, scale_factor=2.0, mode="nearest") + self.lat4(f4)
        h = self.head(self.smooth(p))
        return self.heat(h), F.softplus(self.box(h)) * DIST_SCALE_PX

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        heat, dist = self.forward_raw(x)
        # decode in fp32 whatever the body's precision (fp16 coordinates are too coarse)
        out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] = self.decoder(heat.float(), dist.float())
        return out


def _fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, (k[0], k[1]), (s[0], s[1]), p if isinstance(p, str) else (p[0], p[1]), bias=True
    )
    assert bn.running_var is not None and bn.running_mean is not None
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * (gamma / std).reshape(-1, 1, 1, 1))
        b0 = conv.bias if conv.bias is not None else torch.zeros_like(std)
        assert fused.bias is not None
        fused.bias.copy_(beta + (b0 - bn.running_mean) * gamma / std)
    return fused


def fused_copy(model: CenterNet) -> CenterNet:
    """A copy in eval mode with every BatchNorm folded into its conv (the deployed form)."""
    out = copy.deepcopy(model).eval()
    for mod in out.modules():
        if isinstance(mod, ConvBNAct) and isinstance(mod.bn, nn.BatchNorm2d):
            mod.conv = _fuse_conv_bn(mod.conv, mod.bn)
            mod.bn = nn.Identity()
    return out


def build_fused(spec: ModelSpec) -> CenterNet:
    """An untrained network already in the fused (deployed) layout, to load ONNX weights into."""
    return fused_copy(CenterNet(spec))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(int(p.numel()) for p in model.parameters())
