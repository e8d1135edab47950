"""Callbacks that measure training run by a library's own trainer, through harness.tracking's `Run`:

- harness.integrations.lightning.HarnessCallback, a `lightning.pytorch.Callback` (extra `[lightning]`);
- harness.integrations.transformers.HarnessCallback, a `transformers.TrainerCallback` (extra `[hf]`).

Each module imports its library; this package and `harness` import neither.
"""
