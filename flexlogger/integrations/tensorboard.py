"""TensorBoard's ``SummaryWriter`` on a flexlogger :class:`~flexlogger.core.run.Run`: a script (or a framework that
takes a writer object, such as Hugging Face's ``TensorBoardCallback(tb_writer=...)``) changes its import line only::

    from flexlogger.tensorboard import SummaryWriter      # was: from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter("runs/mnist")                  # env 'mnist', record under runs/mnist/<uid>
    writer.add_scalar("train/loss", loss, step)           # window 'loss', trace 'train' (as flexlogger.wandb)
    writer.add_scalars("loss", {"train": a, "val": b}, step)
    writer.close()

The ``add_*`` methods below, ``flush`` and ``close`` draw in Visdom and write the run record; any other method of
``SummaryWriter`` warns once (:class:`TensorBoardCompatWarning`) and does nothing. No tensorboard package is needed.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from flexlogger.core.run import Run
from flexlogger.defaults import DEFAULT_ENV, DEFAULT_LOG_DIR, DEFAULT_PORT, DEFAULT_SERVER
from flexlogger.errors import ConfigError, short_repr
from flexlogger.integrations.common import Guard, is_number, warn_unsupported
from flexlogger.integrations.windows import Windows, as_float, bin_counts
from flexlogger.sinks.base import Update

__all__ = ["SummaryWriter", "TensorBoardCompatWarning"]


class TensorBoardCompatWarning(UserWarning):
    """A method of TensorBoard's ``SummaryWriter`` that flexlogger does not have was called: it did nothing."""


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _hwc(image: Any, dataformats: str, call: str) -> np.ndarray:
    """An image of layout ``dataformats`` (``CHW``, ``HWC``, ``HW``) as H x W (x C)."""
    arr = _array(image)
    layout = dataformats.upper()
    if sorted(layout) not in (sorted("CHW"), sorted("HW")) or arr.ndim != len(layout):
        raise ConfigError(f"{call}: expected an image of {arr.ndim} dimensions to come with dataformats of as many "
                          f"letters from CHW, HWC or HW, but got shape {tuple(arr.shape)} and dataformats "
                          f"{dataformats!r}")
    return arr.transpose([layout.index(c) for c in ("HWC" if "C" in layout else "HW")])


class SummaryWriter:
    """TensorBoard's ``SummaryWriter``, drawing in Visdom and writing a flexlogger run record.

    Every method keeps TensorBoard's signature, so a script's keywords are all accepted; these are ignored (they set
    TensorBoard's event files, which a flexlogger record does not have): ``purge_step``, ``max_queue``,
    ``flush_secs``, ``filename_suffix``, ``walltime`` (a point is stamped when it is written), ``new_style``,
    ``double_precision``, ``max_bins``, ``hparam_domain_discrete`` and ``run_name``.

    Args:
        log_dir: TensorBoard's run folder: its last part is the Visdom env and its parent the record's root, so
            ``runs/mnist`` writes ``runs/mnist/<uid>``. None: env ``main`` (or ``env``), the root from
            ``$FLEXLOGGER_LOG_DIR`` (else ``runs``).
        comment: appended to the env, as TensorBoard appends it to the folder name.
        env: the Visdom env (instead of the one ``log_dir`` names).
        server, port: the Visdom server (default: ``$FLEXLOGGER_SERVER``/``$FLEXLOGGER_PORT``, else
            ``http://localhost:8097``); ``server=None`` writes the record only.
        **run_options: other :class:`~flexlogger.core.run.Run` options (``uid``, ``disabled``, ...).

    Raises:
        ConfigError: a bad option (naming ``SummaryWriter()``).
    """

    def __init__(self, log_dir: str | Path | None = None, comment: str = "", purge_step: int | None = None,
                 max_queue: int = 10, flush_secs: int = 120, filename_suffix: str = "", *, env: str | None = None,
                 server: str | None = DEFAULT_SERVER, port: int = DEFAULT_PORT, **run_options: Any) -> None:
        root: str | Path | None = DEFAULT_LOG_DIR
        if log_dir is not None:
            root = Path(log_dir).parent
            env = env or Path(log_dir).name
        env = (env or DEFAULT_ENV) + (comment or "")
        self.log_dir = str(log_dir) if log_dir is not None else None
        self.run = Run._from_options("SummaryWriter()", {"env": env, "log_dir": root, "server": server,
                                                         "port": port, **run_options})
        self._windows = Windows(self.run, Guard("flexlogger.tensorboard.SummaryWriter"))
        self._next: dict[str, int] = {}  # tag -> the step after its last point, for a global_step of None
        self._warned: set[str] = set()

    def get_logdir(self) -> str:
        """The run record's folder (TensorBoard's event folder)."""
        return str(self.run.dir) if self.run.dir is not None else (self.log_dir or "")

    def _step(self, tag: str, global_step: Any, call: str) -> float:
        """``global_step`` as a number; None: one more than the tag's last step (0 first)."""
        if type(global_step) is int:  # the hot path, without the checks below
            step: float = global_step
        elif global_step is None:
            step = self._next.get(tag, 0)
        elif isinstance(global_step, bool) or not is_number(global_step):
            raise ConfigError(f"{call}: expected `global_step` to be a number or None, but got "
                              f"{short_repr(global_step)}")
        else:
            value = global_step.item() if isinstance(global_step, (torch.Tensor, np.ndarray)) else global_step
            step = int(value) if isinstance(value, numbers.Integral) else float(value)
        self._next[tag] = int(step) + 1
        return step

    def add_scalar(self, tag: str, scalar_value: Any, global_step: Any = None, walltime: float | None = None,
                   new_style: bool = False, double_precision: bool = False) -> None:
        """Draw ``scalar_value`` at ``global_step``: ``train/loss`` is the trace ``train`` of window ``loss``
        (:func:`~flexlogger.integrations.windows.split_key`).

        Raises:
            ConfigError: the value is not a number (or a one-element tensor or array).
        """
        if type(scalar_value) is not float and not is_number(scalar_value):
            raise ConfigError(f"add_scalar(): expected `scalar_value` of {tag!r} to be a number or a one-element "
                              f"tensor or array, but got {type(scalar_value).__name__} {short_repr(scalar_value)}")
        step = self._step(tag, global_step, "add_scalar()")
        where = self._windows.place(tag)
        if where is not None:
            self._windows.draw(where[0], {where[1]: scalar_value}, step)

    def add_scalars(self, main_tag: str, tag_scalar_dict: Mapping[str, Any], global_step: Any = None,
                    walltime: float | None = None) -> None:
        """Draw several traces in the window ``main_tag`` at ``global_step``."""
        if not isinstance(tag_scalar_dict, Mapping):
            raise ConfigError(f"add_scalars(): expected `tag_scalar_dict` to be a dict of trace -> number, but got "
                              f"{type(tag_scalar_dict).__name__} {short_repr(tag_scalar_dict)}")
        step = self._step(main_tag, global_step, "add_scalars()")
        values: dict[str, Any] = {}
        for trace, value in tag_scalar_dict.items():
            if not is_number(value):
                raise ConfigError(f"add_scalars(): expected {main_tag}/{trace} to be a number, but got "
                                  f"{type(value).__name__} {short_repr(value)}")
            where = self._windows.place_at(f"{main_tag}/{trace}", [main_tag, f"{main_tag}.{trace}"], str(trace))
            if where is not None and where[0] == main_tag:
                values[where[1]] = value
            elif where is not None:
                self._windows.draw(where[0], {where[1]: value}, step)
        if values:
            self._windows.draw(main_tag, values, step)

    def add_histogram(self, tag: str, values: Any, global_step: Any = None, bins: Any = "tensorflow",
                      walltime: float | None = None, max_bins: int | None = None) -> None:
        """Draw the bin counts of ``values`` (``bins``: an int, else 30 equal bins) at ``global_step``."""
        step = self._step(tag, global_step, "add_histogram()")
        count = bins if isinstance(bins, int) and not isinstance(bins, bool) and bins > 0 else 30
        where = self._windows.place(tag, "histogram")
        if where is not None:
            self._windows.draw(where[0], {where[1]: bin_counts(values, count)}, step)

    def add_image(self, tag: str, img_tensor: Any, global_step: Any = None, walltime: float | None = None,
                  dataformats: str = "CHW") -> None:
        """Show an image (``dataformats`` ``CHW``, ``HWC`` or ``HW``; floats in [0, 1] or uint8)."""
        step = self._step(tag, global_step, "add_image()")
        self.run.log_image(tag, _hwc(img_tensor, dataformats, "add_image()"), step)

    def add_images(self, tag: str, img_tensor: Any, global_step: Any = None, walltime: float | None = None,
                   dataformats: str = "NCHW") -> None:
        """Show a batch of images side by side in one image window (``dataformats`` ``NCHW``, ``NHWC``, ...)."""
        step = self._step(tag, global_step, "add_images()")
        batch = _array(img_tensor)
        if not dataformats.upper().startswith("N") or batch.ndim != len(dataformats):
            raise ConfigError(f"add_images(): expected a batch whose dataformats start with N, such as 'NCHW', and "
                              f"has as many letters as dimensions, but got shape {tuple(batch.shape)} and "
                              f"dataformats {dataformats!r}")
        images = [_hwc(one, dataformats[1:], "add_images()") for one in batch]
        self.run.log_image(tag, np.concatenate(images, axis=1), step)

    def add_figure(self, tag: str, figure: Any, global_step: Any = None, close: bool = True,
                   walltime: float | None = None) -> None:
        """Show a matplotlib figure (or a list of them, side by side) as an image."""
        import matplotlib.pyplot as plt

        images = []
        for fig in figure if isinstance(figure, list) else [figure]:
            fig.canvas.draw()
            images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
            if close:
                plt.close(fig)
        height = max(i.shape[0] for i in images)
        padded = [np.pad(i, ((0, height - i.shape[0]), (0, 0), (0, 0)), constant_values=255) for i in images]
        self.run.log_image(tag, np.concatenate(padded, axis=1), self._step(tag, global_step, "add_figure()"))

    def add_text(self, tag: str, text_string: str, global_step: Any = None, walltime: float | None = None) -> None:
        """Show text in the window ``tag`` (and ``text/<tag>-<step>.txt``)."""
        step = None if global_step is None else self._step(tag, global_step, "add_text()")
        self.run.log_text(tag, text_string, step)

    def add_hparams(self, hparam_dict: Mapping[str, Any], metric_dict: Mapping[str, Any],
                    hparam_domain_discrete: Mapping[str, Any] | None = None, run_name: str | None = None,
                    global_step: Any = None) -> None:
        """Record ``hparam_dict`` with ``log_hparams`` and draw ``metric_dict``'s numbers as scalars (their last
        values also go to ``summary.json`` under ``metrics``)."""
        self.run.log_hparams(dict(hparam_dict))
        metrics = {k: as_float(v) for k, v in (metric_dict or {}).items() if is_number(v)}
        for key, value in metrics.items():
            self.add_scalar(key, value, global_step if global_step is not None else 0)
        if metrics and not self.run.disabled:
            self.run.add_to_summary("metrics", metrics)

    def add_pr_curve(self, tag: str, labels: Any, predictions: Any, global_step: Any = None,
                     num_thresholds: int = 127, weights: Any = None, walltime: float | None = None) -> None:
        """Draw the precision-recall curve of ``predictions`` (probabilities) against binary ``labels`` at
        ``num_thresholds`` thresholds, in a curve window ``tag`` (replaced at each call)."""
        step = self._step(tag, global_step, "add_pr_curve()")
        truth = _array(labels).reshape(-1).astype(bool)
        scores = _array(predictions).reshape(-1).astype(np.float64)
        if truth.shape != scores.shape:
            raise ConfigError(f"add_pr_curve(): expected `labels` and `predictions` of one size, but got "
                              f"{truth.size} and {scores.size}")
        w = np.ones_like(scores) if weights is None else _array(weights).reshape(-1).astype(np.float64)
        thresholds = np.linspace(0.0, 1.0, max(2, int(num_thresholds)))
        above = scores[None, :] >= thresholds[:, None]
        tp = (above & truth[None, :]) @ w
        fp = (above & ~truth[None, :]) @ w
        positives = float(w[truth].sum())
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 1.0)
        recall = tp / positives if positives > 0 else np.zeros_like(tp)
        self.run.claim(self, [tag])
        self.run.write([Update(tag, "curve", step, {tag: (recall, precision)},
                               {"title": tag, "xlabel": "recall", "ylabel": "precision"}, self.run.next_seq())])

    def flush(self) -> None:
        """Wait until what was added reached Visdom and the record."""
        if not self.run.closed:
            self.run.flush()

    def close(self) -> None:
        """Close the run (its record's summary says ``finished``)."""
        self.run.close()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.run.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Callable[..., None]:
        """Any other method of TensorBoard's writer: warns once, then does nothing."""
        if name.startswith("_"):
            raise AttributeError(name)
        warn_unsupported("flexlogger.tensorboard", f"SummaryWriter.{name}", TensorBoardCompatWarning, self._warned)
        return _ignore

    def __repr__(self) -> str:
        return f"<flexlogger.tensorboard.SummaryWriter {self.run!r}>"


def _ignore(*args: Any, **kwargs: Any) -> None:
    """What an unsupported method of :class:`SummaryWriter` does."""
