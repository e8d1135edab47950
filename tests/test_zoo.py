"""The counter on models no one here wrote: torchvision's classifiers at their own evaluation crops.

Strict mode must accept every one; matmul + convolution + attention must equal torchvision's published
`_ops` (which counts no norms or pools, and is rounded to 3 decimals of a GMAC) within 1%, and torch's
own counter (attention as math products) exactly up to float summation. The normal suite takes the
cheapest model of a dozen families, chosen for the ops that once broke the counter; all 80 are `slow`.
"""

import pytest

from harness.compute.zoo import count_torchvision, torchvision_classifiers

# DenseNet and Inception v3 (avg_pool2d too) cost several times more on a CPU: they are in the slow test.
DOZEN = [
    "alexnet",
    "googlenet",
    "squeezenet1_1",
    "shufflenet_v2_x0_5",
    "mobilenet_v3_small",  # dropout_, hardswish, squeeze-excitation pools
    "mnasnet0_5",  # dropout_
    "efficientnet_b0",  # dropout_, stochastic depth
    "regnet_x_400mf",
    "resnet18",
    "swin_t",  # fill_, ne, roll
    "swin_v2_t",  # numel, zero_, clamp_min, expand_as, linalg_vector_norm; 256 crop
    "maxvit_t",  # overlapping avg_pool2d, relative-position attention
]


def check(row):
    published = row["torchvision_ops_gmacs"] * 1e9
    work = row["ratio"] * published  # matmul + convolution + attention
    # _ops is rounded to 0.001 GMAC: shufflenet_v2_x0_5's 40.48 M is published as 0.040, 1.2% off.
    assert abs(work - published) <= max(0.01 * published, 0.5e6), "vs torchvision's _ops"
    assert row["torch_ratio"] == pytest.approx(1.0, rel=1e-6), "vs torch's counter (math attention)"
    assert row["macs_other"] == 0, "every counted op has a category"


@pytest.mark.parametrize("name", DOZEN)
def test_a_dozen_families_count_like_torchvision(name):
    check(count_torchvision(name))


@pytest.mark.slow
@pytest.mark.exhaustive  # minutes on 2 cores: run with `pytest -m exhaustive`, not in the default suite
def test_every_torchvision_classifier_counts_like_torchvision():
    names = torchvision_classifiers()
    assert len(names) >= 80
    for name in names:
        check(count_torchvision(name))
