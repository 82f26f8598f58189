"""ResNet encoders and the four GLMC heads.

Names say which ResNet-32 is which:

* ``resnet32``: the usual CIFAR ResNet-32 of the long-tail literature (LDAM, BBN, ...):
  widths 16/32/64, 0.46 M parameters. Use it to compare with published baselines.
* ``resnet32-wide``: what the GLMC authors' code calls "resnet32": the same depth at
  widths 64/128/256 (7.4 M parameters). Reproducing the paper's numbers needs this one.
* ``resnet8``, ``resnet20``: small CIFAR ResNets (16/32/64) for CPU teaching runs.
* ``resnet50``, ``resnext50``: torchvision backbones for 224-pixel images (ImageNet-LT, iNat).

All CIFAR ResNets use option-A (zero-padding) shortcuts and Kaiming-normal initialisation,
as the authors' ``ResNet_modify`` does.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MODELS", "GLMCNet", "CifarResNet", "NormedLinear", "build_model", "count_parameters",
           "per_view_batch_norm"]


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # Option A: subsample and zero-pad channels; no parameters in the shortcut.
        self.pad = (planes - in_planes) // 2 if (stride != 1 or in_planes != planes) else None
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad is None:
            short = x
        else:
            short = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: three stages of ``n`` basic blocks; returns features."""

    def __init__(self, blocks_per_stage: int, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, in_planes = [], widths[0]
        for stage, planes in enumerate(widths):
            for i in range(blocks_per_stage):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(_BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        # A mean, not adaptive_avg_pool2d: same value, but its CUDA backward is deterministic (--deterministic).
        return out.mean(dim=(2, 3))  # (B, out_dim)


class _GlobalMean(nn.Module):
    """``AdaptiveAvgPool2d(1)`` as a mean: ``(B, C, H, W) -> (B, C, 1, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class _TorchvisionEncoder(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        net.avgpool = _GlobalMean()  # deterministic CUDA backward, unlike AdaptiveAvgPool2d
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet8": lambda: CifarResNet(1, (16, 32, 64)),
    "resnet20": lambda: CifarResNet(3, (16, 32, 64)),
    "resnet32": lambda: CifarResNet(5, (16, 32, 64)),
    "resnet32-wide": lambda: CifarResNet(5, (64, 128, 256)),
    "resnet50": lambda: _TorchvisionEncoder("resnet50"),
    "resnext50": lambda: _TorchvisionEncoder("resnext50_32x4d"),
}


class GLMCNet(nn.Module):
    """Encoder ``f`` plus the heads: ``fc``, ``fc_cb``, projection ``h`` (→128), prediction ``u`` (128→128).

    ``forward`` returns a dict with ``features``, ``logits`` (fc), ``logits_cb`` (fc_cb),
    ``h`` and ``u``; :meth:`predict` returns the logits used at inference, from ``fc_cb``
    as in the paper, or from ``fc`` for methods without a re-balanced head.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, proj_dim: int = 128, inference_head: str = "fc_cb"):
        super().__init__()
        if inference_head not in ("fc", "fc_cb"):
            raise ValueError("inference_head must be 'fc' or 'fc_cb'")
        self.encoder = encoder
        feat = encoder.out_dim
        self.fc = nn.Linear(feat, num_classes)
        self.fc_cb = nn.Linear(feat, num_classes)
        self.projector = nn.Linear(feat, proj_dim)
        self.predictor = nn.Linear(proj_dim, proj_dim)
        self.inference_head = inference_head
        self.num_classes = num_classes
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        r = self.encoder(x)
        h = self.projector(r)
        return {"features": r, "logits": self.fc(r), "logits_cb": self.fc_cb(r), "h": h, "u": self.predictor(h)}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        r = self.encoder(x)
        return self.fc_cb(r) if self.inference_head == "fc_cb" else self.fc(r)


class NormedLinear(nn.Module):
    """Cosine classifier of LDAM (Cao et al. 2019): ``s · cos(r, w_c)`` for each class ``c``.

    The weight is ``(num_classes, in_features)`` like ``nn.Linear``'s (one row per class, so
    per-class norms read the same way) and there is no bias. The scale ``s`` (30 in LDAM-DRW)
    is applied here, so these logits sit on a linear head's scale.
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1, 1))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).t()  # (B, C)


def build_model(name: str, num_classes: int, proj_dim: int = 128, inference_head: str = "fc_cb") -> GLMCNet:
    """Build a :class:`GLMCNet` with the named encoder (see :data:`MODELS`)."""
    if name not in MODELS:
        from .errors import GLMCError

        raise GLMCError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return GLMCNet(MODELS[name](), num_classes, proj_dim, inference_head)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def per_view_batch_norm(model: nn.Module, views: int, mode: str = "split") -> Iterator[nn.Module]:
    """Inside this block, a batch made of ``views`` equal parts goes through ``model`` as if each part
    went through on its own, one after the other.

    Every batch-norm layer in training mode normalises each part with that part's own statistics and
    updates its running statistics once per part, in order; everything else in these networks works
    image by image. So ``model(torch.cat([a, b]))`` equals ``model(a)`` then ``model(b)`` (outputs,
    gradients and buffers), with bigger convolutions: the fast path uses it for the global and the local
    mixture (``fuse_views``). In evaluation mode batch norm uses its running statistics and nothing changes.

    ``mode`` (``Config.view_norm``, which the fast path's forward passes): ``"split"`` calls batch norm once per
    part and concatenates; ``"grouped"`` computes every part's statistics in one pass over a ``(views, B, ...)`` view
    and normalises all parts in one affine op, with no concatenation, and updates the running statistics in
    closed form (the same values as ``views`` updates in order). Fewer, larger kernels; same maths up to
    float rounding (statistics in float32 whatever the input's dtype, as cuDNN's batch norm keeps them).
    """
    if mode not in ("split", "grouped"):
        raise ValueError(f"view_norm must be 'split' or 'grouped', got {mode!r}")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        # one function object per layer, views and mode, reused on every entry: torch.compile guards on it
        cache = bn.__dict__.setdefault("_view_forwards", {})
        if (views, mode) not in cache:
            cache[(views, mode)] = _split_forward(bn, views, mode)
        bn.forward = cache[(views, mode)]
    try:
        yield model
    finally:
        for bn in norms:
            del bn.forward  # back to the class's forward


def _split_forward(bn: nn.modules.batchnorm._BatchNorm, views: int, mode: str):
    plain = type(bn).forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not bn.training or views == 1:
            return plain(bn, x)
        if x.shape[0] % views:
            raise ValueError(f"a batch of {x.shape[0]} does not split into {views} equal views")
        if mode == "grouped" and bn.momentum is not None and bn.affine and bn.track_running_stats:
            return _grouped_batch_norm(bn, x, views)
        return torch.cat([plain(bn, part) for part in x.chunk(views)])

    return forward


def _grouped_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, views: int) -> torch.Tensor:
    """Training-mode batch norm of each of ``views`` equal parts of ``x`` with its own statistics, at once."""
    n, c = x.shape[0] // views, x.shape[1]
    xv = x.view(views, n, *x.shape[1:])
    xf = xv if xv.dtype == torch.float32 else xv.float()
    dims = (1, *range(3, xv.dim()))  # every dimension but the view and the channel
    var, mean = torch.var_mean(xf, dim=dims, keepdim=True, correction=0)
    shape = (1, 1, c) + (1,) * (xv.dim() - 3)
    scale = torch.rsqrt(var + bn.eps) * bn.weight.view(shape)
    y = (xf * scale + (bn.bias.view(shape) - mean * scale)).to(x.dtype)
    with torch.no_grad():  # views sequential updates r <- (1-m) r + m s_v, in closed form
        m, count = bn.momentum, xv.numel() // (views * c)
        coef = m * (1 - m) ** torch.arange(views - 1, -1, -1, device=x.device, dtype=torch.float32)
        unbiased = var.view(views, c) * (count / max(count - 1, 1))
        bn.running_mean.mul_((1 - m) ** views).add_((coef[:, None] * mean.view(views, c)).sum(0))
        bn.running_var.mul_((1 - m) ** views).add_((coef[:, None] * unbiased).sum(0))
        bn.num_batches_tracked.add_(views)
    return y.reshape(x.shape)  # a view: y keeps x's memory layout (channels_last stays channels_last)
