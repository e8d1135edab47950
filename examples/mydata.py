"""A researcher's own dataset, as `harness train data=custom data._target_=mydata.make_shapes` sees it: a
function in a file outside the harness (its folder on PYTHONPATH) returning train and test splits.

`make_shapes` returns (x, y) tensors (held in memory, like the built-ins); `make_shapes_lazy` returns the same
kind of data as map-style torch Datasets that draw each sample when asked, so nothing is held whole (the
harness reads them through a DataLoader). Both are synthetic and offline: 8x8 grey images of one of four
shapes (square, cross, diagonal, ring) at a random position, with noise.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

CLASSES = 4


def _shape(label: int, generator: torch.Generator, noise: float) -> torch.Tensor:
    """One (1, 8, 8) image of shape `label`, placed at random, plus Gaussian noise."""
    patch = torch.zeros(4, 4)
    if label == 0:
        patch[:, :] = 1.0  # square
    elif label == 1:
        patch[1:3, :] = patch[:, 1:3] = 1.0  # cross
    elif label == 2:
        patch = torch.eye(4)  # diagonal
    else:
        patch[0, :] = patch[-1, :] = patch[:, 0] = patch[:, -1] = 1.0  # ring
    image = torch.zeros(1, 8, 8)
    row, col = torch.randint(0, 5, (2,), generator=generator).tolist()
    image[0, row : row + 4, col : col + 4] = patch
    return image + noise * torch.randn(1, 8, 8, generator=generator)


def make_shapes(train_size: int = 1200, test_size: int = 400, noise: float = 0.5, seed: int = 0) -> dict:
    """(x, y) tensors for train and test; `seed` fixes the dataset itself (the harness subsamples it)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(train_size + test_size) % CLASSES
    images = torch.stack([_shape(int(c), generator, noise) for c in labels])
    return {
        "train": (images[:train_size], labels[:train_size]),
        "test": (images[train_size:], labels[train_size:]),
        "num_classes": CLASSES,
    }


class LazyShapes(Dataset):
    """Sample i is drawn from its own seed when asked: nothing is kept in memory."""

    def __init__(self, size: int, noise: float, seed: int) -> None:
        self.size, self.noise, self.seed = size, noise, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        label = int(i) % CLASSES
        return _shape(label, generator, self.noise), label


def make_shapes_lazy(train_size: int = 1200, test_size: int = 400, noise: float = 0.5, seed: int = 0) -> dict:
    """The same kind of data as map-style Datasets (train and test drawn from different seeds)."""
    return {
        "train": LazyShapes(train_size, noise, seed),
        "test": LazyShapes(test_size, noise, seed + 1),
        "num_classes": CLASSES,
    }
