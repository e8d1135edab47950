"""Dataset builders returning small in-memory tensors (no DataLoader); see load_dataset."""

from harness.data.dataset import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
