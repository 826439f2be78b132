"""The experiment record of a run: hyperparameters, text, markdown, images, the command line, a summary, printed
lines, progress bars and saved models (the calls of lavd, losswise and the original flexilogger).

Every call is a method of :class:`~flexlogger.core.run.Run` (inherited from :class:`RecordCalls`) and is handed on by
:class:`~flexlogger.core.logger.FlexLogger` (``Stat.log_text(...)`` is ``Stat.run.log_text(...)``). The modules:
``base`` (drawing a window through the run, writing a run file), ``status`` (``summary.json``, ``max_steps``, best
values), ``calls`` (the calls), ``command`` (the command line), ``environment`` (git), ``models`` (saving),
``common`` (names, errors, checks). Each call

- draws a window in the run's env through the normal path (an :class:`~flexlogger.sinks.base.Update` of kind
  ``text`` or ``image`` given to :meth:`Run.write <flexlogger.core.run.Run.write>`), so the run record stores it and
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
from flexlogger.experiment.command import command_line
from flexlogger.experiment.common import (
           HPARAMS_PLOT,
           HTML_OPT,
           STATUS_PLOT,
           SUMMARY_PLOT,
           RecordCallError,
           RecordCallTypeError,
           safe_name,
           write_file,
)
from flexlogger.experiment.models import unwrap_model

__all__ = ["HPARAMS_PLOT", "HTML_OPT", "STATUS_PLOT", "SUMMARY_PLOT", "RecordCallError", "RecordCallTypeError",
           "RecordCalls", "command_line", "safe_name", "unwrap_model", "write_file"]
