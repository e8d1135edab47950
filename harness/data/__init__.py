"""Datasets: each a loader plugin (`data._target_`; the built-ins in harness.data.sources), read into
in-memory tensors or, for a map-style torch Dataset, streamed through a DataLoader; see load_dataset."""

from harness.data.dataset import Dataset, StreamedDataset, TrainingData, load_dataset
from harness.data.splits import Splits

__all__ = ["Dataset", "Splits", "StreamedDataset", "TrainingData", "load_dataset"]
