"""Plot types: which meter view a plot draws, and whether points are appended or the window replaced.

How a plot becomes a Visdom call lives in ``sinks/visdom.py``; this module only describes the plot types so
that the logger, the config validation and the other sinks agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlotType:
    """A kind of window.

    Attributes:
        name: the ``type`` used in plot specs.
        views: the meter views it can draw, in order of preference (see ``flexlogger.meters``).
        append: True when each ``log()`` appends a point per trace at ``x=step`` (the window keeps history);
            False when each ``log()`` replaces the window's content with the latest values.
        max_meters: how many meters one window of this type can show (None: any number).
        description: what it shows, for ``plot_info``.
    """

    name: str
    views: tuple[str, ...]
    append: bool
    max_meters: int | None
    description: str


PLOT_TYPES: tuple[PlotType, ...] = (
    PlotType("line", ("scalar",), True, None,
             "lines over steps: one trace per meter series (e.g. train_loss, test_loss), a point per log()"),
    PlotType("scatter", ("scalar",), True, None,
             "markers over steps: one trace per meter series, a point per log()"),
    PlotType("bar", ("vector", "scalar"), False, None,
             "bars of the latest values: a bar per element of a vector meter (e.g. APMeter: one per class), "
             "grouped by meter; or one bar per scalar series"),
    PlotType("histogram", ("vector",), False, 1,
             "a histogram of the latest array (e.g. a ValueMeter fed weights); opts.numbins sets the bins"),
    PlotType("heatmap", ("matrix",), False, 1,
             "a heatmap of the latest matrix (e.g. ConfusionMeter: rows targets, columns predictions)"),
    PlotType("image", ("matrix",), False, 1,
             "an image from the latest H x W, C x H x W or H x W x C array (values in [0, 1] or [0, 255])"),
    PlotType("text", ("text",), False, None,
             "a table of the latest value of each meter"),
    PlotType("curve", ("curve",), False, None,
             "x/y curves replaced on each log(), one per meter (e.g. AUCMeter's ROC curve)"),
)
