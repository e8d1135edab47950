"""The Hydra config tree, shipped as the package harness.conf (roots train.yaml, measure.yaml, fit.yaml)."""

# Where Hydra and the checks before it find the tree (`pkg://harness.conf`).
CONFIG_MODULE = __name__
