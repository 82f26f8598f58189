"""Numeric precision of a run: fp32, or bf16 autocast with channels_last where the hardware has it.

``Config.precision`` is ``"auto"``, ``"bf16"`` or ``"fp32"``. A run resolves ``"auto"`` once, when it is
built (:func:`resolve_precision`), and records the result in its config, so a resumed run keeps the
precision it started with on any machine:

* on the CPU, ``"bf16"`` where the processor computes bf16 natively (oneDNN reports AVX-512 BF16 or
  AMX, e.g. AMD Zen 4, Intel Sapphire Rapids): one SGD step of the standard ResNet-32 takes about half
  the time of fp32 there (``benchmarks/bench_cpu.py``); elsewhere bf16 is emulated and slower, so
  ``"fp32"``;
* on a CUDA GPU, ``"bf16"`` where the GPU supports it (Ampere and later);
* anywhere else (Apple's MPS), ``"fp32"``.

In bf16 the network's convolutions and linear layers run under ``torch.autocast`` (weights, optimiser
and losses stay fp32: mixed precision, as on a GPU), with images and weights in channels_last. The
autocast context is entered per forward pass with its weight cache off: one context around a whole
run with the cache on would keep reusing the first bf16 copies of the weights after every optimiser
step (the model collapses to one class; ``tests/test_precision.py`` checks it does not).
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch

__all__ = ["PRECISIONS", "native_bf16", "resolve_precision", "autocast", "layout", "precision_forward",
           "describe_precision"]

PRECISIONS = ("auto", "bf16", "fp32")


def native_bf16(device_type: str = "cpu") -> bool:
    """Does this device compute bf16 natively (not emulated in fp32)?"""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch built without oneDNN
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``"bf16"`` or ``"fp32"``: ``precision`` itself, or for ``"auto"`` what ``device`` computes fastest."""
    if precision != "auto":
        return precision
    device_type = torch.device(device).type
    return "bf16" if device_type in ("cpu", "cuda") and native_bf16(device_type) else "fp32"


def autocast(precision: str, device_type: str):
    """The context one forward pass runs in: bf16 autocast (weight cache off), or nothing for fp32."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=False)


def layout(x: torch.Tensor, precision: str) -> torch.Tensor:
    """Images in the memory layout of ``precision``: channels_last for bf16 (oneDNN's and cuDNN's fastest)."""
    return x.contiguous(memory_format=torch.channels_last) if precision == "bf16" and x.dim() == 4 else x


def precision_forward(precision: str, device_type: str):
    """A :data:`~glmc_core.methods.Forward` running each batch through the model in ``precision``."""
    if precision != "bf16":
        return None

    def forward(model: torch.nn.Module, batches: Sequence[torch.Tensor]) -> list:
        with autocast(precision, device_type):
            return [model(layout(x, precision)) for x in batches]

    return forward


def describe_precision(precision: str, device: torch.device) -> str:
    """A few words for the log line that says how a run trains."""
    if precision == "bf16":
        return "bf16 autocast, channels_last"
    if device.type == "cpu" and native_bf16("cpu"):
        return ("fp32 (this CPU computes bf16 natively: a new run with precision auto or bf16 trains about twice "
                "as fast)")
    return "fp32"
