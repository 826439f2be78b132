"""The experiment record of a run: hyperparameters, text, markdown, images, the command line, a summary, printed
lines, progress bars and saved models (the calls of lavd, losswise and the original flexilogger).

The calls are methods of :class:`RecordCalls`, an object each :class:`~flexlogger.core.run.Run` owns; users call
them on the run (``run.log_text(...)``, see :mod:`~flexlogger.experiment.forward`). Each call draws a window in
the run's env through the run's sinks (so the run record stores it and ``flexlogger replay`` redraws it), writes a
readable file into the run folder (``run.dir``), each written whole, and does nothing at all on a disabled run.

Files in the run folder::

    hparams.json                      log_hparams (merged over every call)
    text/<name>-<step>.txt            log_text (with ``expected``: the word diff, [-deleted-] {+inserted+})
    text/<name>-<step>.md             log_markdown
    images/<name>-<step>.png          log_image (the boxes drawn), images/<name>-<step>.json: the boxes
    command.md, summary.md            log_command, log_summary
    log.txt                           println, eprintln, print_table, progress
    models/model-<step>.pt            save_model;  objects/<name>-<step>.pt: save_obj

A bad argument raises :class:`RecordCallError` (a ``ValueError``) or :class:`RecordCallTypeError` (also a
``TypeError``), naming the call, the argument, what was expected and what came.
"""

from __future__ import annotations

from flexlogger.experiment.calls import RecordCalls
from flexlogger.experiment.checks import (
           HPARAMS_PLOT,
           HTML_OPT,
           STATUS_PLOT,
           SUMMARY_PLOT,
           RecordCallError,
           RecordCallTypeError,
           safe_name,
)
from flexlogger.experiment.command import command_line
from flexlogger.experiment.forward import RECORD_CALLS, RecordCall
from flexlogger.experiment.models import unwrap_model

__all__ = ["HPARAMS_PLOT", "HTML_OPT", "RECORD_CALLS", "STATUS_PLOT", "SUMMARY_PLOT", "RecordCall", "RecordCallError",
           "RecordCallTypeError", "RecordCalls", "command_line", "safe_name", "unwrap_model"]
