"""ImageMeter: the last batch of images, drawn as one grid."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from flexlogger.errors import ConfigError
from flexlogger.meters.base import Meter, State
from flexlogger.meters.convert import bad_input, to_tensor

PADDING = 2


def make_grid(batch: torch.Tensor, nrow: int = 8, padding: int = PADDING, pad_value: float = 0.0) -> torch.Tensor:
    """The images of an N x C x H x W batch in one C x H' x W' image, ``nrow`` per row, as torchvision's make_grid.

    Images are placed left to right, then top to bottom, each with ``padding`` pixels of ``pad_value`` around it
    (shared between neighbours). Like torchvision, a batch of one image is that image, unpadded; unlike it, a
    one-channel batch stays one channel (torchvision repeats it three times).

    Example:
        >>> make_grid(torch.ones(3, 1, 2, 2), nrow=2).shape
        torch.Size([1, 10, 10])
    """
    n, c, h, w = batch.shape
    if n == 1:
        return batch[0].clone()
    columns = min(nrow, n)
    rows = math.ceil(n / columns)
    cell_h, cell_w = h + padding, w + padding
    grid = batch.new_full((c, rows * cell_h + padding, columns * cell_w + padding), pad_value)
    for k in range(n):
        row, col = divmod(k, columns)
        top, left = row * cell_h + padding, col * cell_w + padding
        grid[:, top:top + h, left:left + w] = batch[k]
    return grid


class ImageMeter(Meter):
    kind = "ImageMeter"
    takes = ("add(batch): an N x C x H x W tensor/array of images (C = 1 or 3; floats in [0, 1] or integers 0-255; "
             "out-of-range, NaN or Inf values are refused)")
    plots_as = "matrix: the last batch as one C x H x W grid, `nrow` images per row, 2 pixels of padding"
    views = ("matrix",)
    note = ("Not in torchnet (from flexilogger): the last batch added, as torchvision's make_grid draws it "
            "(written here with torch, so torchvision is not needed). The batch is copied to the host at add(); the "
            "grid is made at value().")
    state = (State("_batch", None, "first"),)

    _batch: torch.Tensor | None

    def __init__(self, name: str, nrow: int = 8) -> None:
        if not isinstance(nrow, int) or isinstance(nrow, bool) or nrow < 1:
            raise ConfigError(f"meter {name!r} (ImageMeter): expected `nrow` (images per row) to be a positive int, "
                              f"but got {nrow!r}")
        self.nrow = nrow
        super().__init__(name)

    def add(self, batch: Any) -> bool | None:
        images = to_tensor(self, batch, "batch: an N x C x H x W tensor/array of images")
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise bad_input(self, images, "batch: an N x C x H x W tensor/array of images with C = 1 or 3 channels")
        if images.shape[0] == 0:
            return False  # an empty batch: nothing received
        batch = images.detach().to("cpu", copy=True)
        if batch.is_floating_point():  # bfloat16 is float32 already (to_tensor)
            if not bool(torch.isfinite(batch).all()):
                raise bad_input(self, images, "batch: images with finite values (floats in [0, 1]), not NaN or Inf")
            low, high = float(batch.min()), float(batch.max())
            if low < 0 or high > 255:  # Visdom scales a float image whose maximum is <= 1, else reads it as 0-255
                raise bad_input(self, images, f"batch: float images in [0, 1] (or 0-255), not values from {low:g} to "
                                              f"{high:g}")
        elif batch.dtype == torch.bool:
            batch = batch.to(torch.uint8) * 255
        else:
            low, high = int(batch.min()), int(batch.max())
            if low < 0 or high > 255:
                raise bad_input(self, images, f"batch: integer images in [0, 255], not values from {low} to {high}")
        self._batch = batch
        return None

    def value(self) -> np.ndarray | None:
        """The grid as a C x H x W array (None when empty)."""
        if self._batch is None:
            return None
        return make_grid(self._batch, self.nrow).numpy()

    def matrix(self) -> np.ndarray:
        grid = self.value()
        if grid is None:
            raise bad_input(self, grid, "a batch of images: add(batch) before drawing it")
        return grid
