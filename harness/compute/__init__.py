"""Compute accounting: FLOPs per forward pass, training FLOPs, peak FLOP/s and hardware burden."""

from harness.compute.flops import FlopReport, UnsupportedOpError, count_flops, torch_forward_flops
from harness.compute.hardware import PeakFlops, hardware_burden, peak_flops_for
from harness.compute.training import StepFlops, measure_train_step, network_operations

__all__ = [
    "FlopReport",
    "PeakFlops",
    "StepFlops",
    "UnsupportedOpError",
    "count_flops",
    "hardware_burden",
    "measure_train_step",
    "network_operations",
    "peak_flops_for",
    "torch_forward_flops",
]
