"""The experiment record of a run: hyperparameters, text, markdown, images, the command line, a summary, printed
lines, progress bars and saved models (the calls of lavd, losswise and the original flexilogger).

The calls are methods of :class:`RecordCalls`, an object each :class:`~flexlogger.core.run.Run` owns (``run.calls``);
the documented path is ``run.log_text(...)``, and ``Stat.log_text(...)`` on a
:class:`~flexlogger.core.logger.FlexLogger` is the same call (a convenience for lavd users, who hold one object),
both shown through one :class:`~flexlogger.experiment.forward.RecordCall` per name. The modules: ``calls`` (the
calls), ``forward`` (showing them on the run and its loggers), ``folder`` (writing the run folder's files),
``status`` (``summary.json``, ``max_steps``, best values), ``command`` (the command line), ``environment`` (git),
``models`` (saving), ``checks`` (names, errors, argument checks, value conversions). Each call

- draws a window in the run's env through the normal path (an :class:`~flexlogger.sinks.base.Update` of kind
  ``text`` or ``image`` handed to the run's sinks), so the run record stores it and
  ``flexlogger replay`` redraws it;
- writes a readable file into the run folder (``run.dir``, when the run has a record), each written whole (a
  temporary file, then ``os.replace``), never half;
- does nothing at all on a disabled run (``Run(disabled=True)``, ``run.disable()``, ranks other than 0): no file,
  no thread, no server contacted.

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
           write_file,
)
from flexlogger.experiment.command import command_line
from flexlogger.experiment.forward import RECORD_CALLS, RecordCall
from flexlogger.experiment.models import unwrap_model

__all__ = ["HPARAMS_PLOT", "HTML_OPT", "RECORD_CALLS", "STATUS_PLOT", "SUMMARY_PLOT", "RecordCall", "RecordCallError",
           "RecordCallTypeError", "RecordCalls", "command_line", "safe_name", "unwrap_model", "write_file"]
