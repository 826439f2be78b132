"""The experiment-record calls: hyperparameters, text, markdown, images, the command, the summary, printing,
progress bars, models and objects."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from flexlogger.errors import short_repr
from flexlogger.experiment import images
from flexlogger.experiment.checks import (
    COMMAND_PLOT,
    FIXED_WINDOWS,
    HPARAMS_FILE,
    HPARAMS_PLOT,
    HTML_OPT,
    SUMMARY_PLOT,
    RecordCallError,
    RecordCallTypeError,
    as_mapping,
    cell,
    check_name,
    check_order,
    check_step,
    check_text,
    flatten,
    merge,
    safe_name,
    step_suffix,
    tree,
    type_error,
)
from flexlogger.experiment.command import command_line, option_rows
from flexlogger.experiment.console import RunConsole
from flexlogger.experiment.environment import run_facts, summary_markdown
from flexlogger.experiment.folder import RunFolder
from flexlogger.experiment.models import save_torch, unwrap_model
from flexlogger.experiment.textdiff import diff_html, diff_text, fenced, markdown_html, markdown_table, pre, word_diff
from flexlogger.sinks.base import Update

_EXTENSION = re.compile(r"(\.[A-Za-z0-9_-]+)*")
"""A file suffix :meth:`RecordCalls.file_path` takes: ``''``, ``.csv``, ``.tar.gz``."""


@dataclass
class CallsState:
    """What the record calls keep between calls."""

    hparams: dict[str, Any] = field(default_factory=dict)
    """Every hyperparameter logged so far, merged (``hparams.json``)."""
    opts: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    """Window -> its opts as last drawn: the same object while they do not change (the record declares them once)."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Window -> its kind (``text``, ``image``): a window keeps its kind."""
    stems: dict[str, str] = field(default_factory=dict)
    """File stem -> the name it was made from: two names with one safe form get distinct files."""


class RecordCalls:
    """The experiment-record calls of one :class:`~flexlogger.core.run.Run` (see :mod:`flexlogger.experiment`).

    The run makes one and hands it what the calls need; users reach the calls as ``run.log_text(...)`` (see
    :class:`~flexlogger.experiment.forward.RecordCall`).

    Args:
        env, uid: the run's Visdom env and run id (named by ``log_summary``).
        started: the run's start time (``time.time()``).
        folder: the run folder's writer.
        deliver: hands one window's :class:`~flexlogger.sinks.base.Update` to the run's sinks.
        claim: reserves window names for the run's own calls (a logger of the run cannot draw them).
        next_seq: the run's next update number.
        disabled: True while the run writes nothing (every call returns at once).
        check_open: raises the run's error for a closed run, naming the call.
    """

    def __init__(self, *, env: str, uid: str, started: float, folder: RunFolder, deliver: Callable[[Update], None],
                 claim: Callable[[Iterable[str]], None], next_seq: Callable[[], int], disabled: Callable[[], bool],
                 check_open: Callable[[str], None]) -> None:
        self.env, self.uid, self.started = env, uid, started
        self.folder = folder
        self.state = CallsState()
        self.console = RunConsole(folder=folder, disabled=disabled)
        """The calls that print: ``println``, ``eprintln``, ``print_table``, ``progress`` (shown on the run too)."""
        self._deliver, self._claim, self._next_seq = deliver, claim, next_seq
        self._disabled, self._check_open = disabled, check_open

    # windows -------------------------------------------------------------------------------------------------
    def window_update(self, plot: str, kind: str, data: Mapping[str, Any], step: float | None,
                      opts: Mapping[str, Any] | None = None) -> Update:
        """The update that draws one window of the run's own (a record call's, or the status window)."""
        self._claim([plot])
        given = MappingProxyType({"title": plot, **(opts or {})})
        seen = self.state.opts.get(plot)
        if seen is None or dict(seen) != dict(given):  # the same object each time: the record declares it once
            seen = self.state.opts[plot] = given
        self.state.kinds[plot] = kind
        return Update(plot, kind, 0 if step is None else step, dict(data), seen, self._next_seq())

    def _draw(self, plot: str, kind: str, data: Mapping[str, Any], step: float | None,
              opts: Mapping[str, Any] | None = None) -> None:
        self._deliver(self.window_update(plot, kind, data, step, opts))

    def _draw_html(self, plot: str, html: str, step: float | None) -> None:
        self._draw(plot, "text", {plot: html}, step, {HTML_OPT: True})

    def _check_window(self, call: str, name: Any, kind: str) -> str:
        """A window name a text or image call may draw, on an open run: a non-empty string, not one of the run's
        fixed windows, and not a window of the run drawn as another kind (a text window stays text, an image window
        an image).

        Raises:
            RecordCallError: a bad or taken name (before any file is written).
        """
        self._check_open(call)
        name = check_name(call, name)
        if name in FIXED_WINDOWS:
            raise RecordCallError(f"{call}: expected a window name other than the run's own windows "
                                  f"({', '.join(sorted(FIXED_WINDOWS))}), but got {name!r}")
        drawn = self.state.kinds.get(name)
        if drawn is not None and drawn != kind:
            raise RecordCallError(f"{call}: expected a window name that is free or of kind {kind!r}, but window "
                                  f"{name!r} of this run is of kind {drawn!r}")
        return name

    # hyperparameters ---------------------------------------------------------------------------------------
    def log_hparams(self, hparams: Mapping[str, Any] | argparse.Namespace | Any) -> None:
        """Record hyperparameters: a table window ``hparams`` (nested keys as ``optim.lr``) and ``hparams.json``.

        Args:
            hparams: a dict (nested dicts allowed), an ``argparse.Namespace`` or a dataclass instance. Values
                that are not JSON (a path, ``torch.float32``, a function) are stored as their ``str()``; tensors
                and arrays as lists. Several calls merge: later values win, nested dicts key by key.

        Raises:
            RecordCallTypeError: ``hparams`` is not a mapping, a Namespace or a dataclass, or a key is not a
                non-empty string.

        Example:
            >>> run.log_hparams({'lr': 0.1, 'optim': {'name': 'adam', 'betas': [0.9, 0.999]}})
        """
        if self._disabled():
            return
        call = "log_hparams()"
        self._check_open(call)
        given = tree(call, "hparams", as_mapping(call, "hparams", hparams))
        everything = self.state.hparams = merge(self.state.hparams, given)
        self.folder.write(call, HPARAMS_FILE, json.dumps(everything, indent=2) + "\n")
        self._draw(HPARAMS_PLOT, "text", {k: cell(v) for k, v in flatten(everything).items()}, None)

    @property
    def hparams(self) -> dict[str, Any]:
        """The hyperparameters logged so far (as stored in ``hparams.json``)."""
        return json.loads(json.dumps(self.state.hparams))

    # text, markdown, images ----------------------------------------------------------------------------------
    def _file(self, folder: str, name: str, step: float | None) -> str:
        """``<folder>/<name>-<step>`` (without extension), ``name`` made a safe file name unique in the run: a name
        whose safe form another name of the run already has (``~``, ``€`` and ``\\ud800`` are all ``_``) gets a hash
        of itself appended, so neither file overwrites the other."""
        stems = self.state.stems
        stem = safe_name(name)
        if stems.setdefault(stem, name) != name:
            stem = f"{stem}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"
            stems.setdefault(stem, name)
        return f"{folder}/{stem}{step_suffix(step)}"

    def log_text(self, name: str, text: str, step: float | None = None, expected: str | None = None) -> None:
        """Show ``text`` in the window ``name`` and store it as ``text/<name>-<step>.txt``.

        Args:
            name: the window (and file) name.
            text: the text, shown as written (HTML special characters escaped, line breaks kept).
            step: the step it belongs to (None: no step in the file name; a later call replaces the file).
            expected: the text it should have been: the window shows a word-level diff against it (deletions
                struck through in red, insertions in green) and ``text/<name>-<step>.diff.txt`` holds it marked as
                ``[-deleted-]`` and ``{+inserted+}``.

        Raises:
            RecordCallError: a bad name, text, expected or step, or the name and the text in lavd's order,
                ``log_text(text, name)`` (see :func:`~flexlogger.experiment.checks.check_order`): nothing is
                written.
        """
        if self._disabled():
            return
        check_order("log_text()", name, text, "text")
        self.keyed_text(name, text, step, expected)

    def keyed_text(self, name: str, text: str, step: float | None = None, expected: str | None = None) -> None:
        """:meth:`log_text` for a key and its value, which cannot come swapped (an integration's dict of values,
        such as ``wandb.log({'my note': 'ok'})``): the same window and file, without the argument-order check."""
        if self._disabled():
            return
        call = "log_text()"
        name = self._check_window(call, name, "text")
        text = check_text(call, "text", text)
        if expected is not None:
            expected = check_text(call, "expected", expected)
        step = check_step(call, step)
        base = self._file("text", name, step)
        self.folder.write(call, base + ".txt", text)
        if expected is None:
            self._draw(name, "text", {name: text}, step)
            return
        ops = word_diff(expected, text)
        self.folder.write(call, base + ".diff.txt", diff_text(ops))
        self._draw_html(name, pre(diff_html(ops)), step)

    def log_markdown(self, name: str, markdown: str, step: float | None = None) -> None:
        """Show Markdown rendered in the window ``name`` and store it as ``text/<name>-<step>.md``.

        Raw HTML in ``markdown`` is shown as text, never run (see :func:`flexlogger.experiment.textdiff.markdown_html`).

        Raises:
            RecordCallError: a bad name, markdown or step, or the name and the markdown in lavd's order,
                ``log_markdown(markdown, name)`` (nothing is written).
        """
        if self._disabled():
            return
        call = "log_markdown()"
        check_order(call, name, markdown, "markdown")
        name = self._check_window(call, name, "text")
        markdown = check_text(call, "markdown", markdown)
        step = check_step(call, step)
        self.folder.write(call, self._file("text", name, step) + ".md", markdown)
        self._draw_html(name, markdown_html(markdown), step)

    def log_image(self, name: str, image: Any, step: float | None = None, boxes: Sequence[Mapping[str, Any]] |
                  None = None, classes: Sequence[str] | None = None, threshold: float | None = None) -> None:
        """Show an image in the window ``name``, with bounding boxes drawn on it, and store it as
        ``images/<name>-<step>.png`` (the boxes: ``images/<name>-<step>.json``).

        Args:
            name: the window (and file) name.
            image: a tensor or numpy array (H x W, C x H x W or H x W x C; floats in [0, 1] or integers in
                [0, 255]) or a PIL image; see :mod:`flexlogger.experiment.images`.
            step: the step it belongs to.
            boxes: dicts ``{'xStart', 'yStart', 'xEnd', 'yEnd', 'className', 'probability'}`` in pixels
                (``className`` and ``probability`` optional): each is drawn with its class's colour, its class
                name and its probability.
            classes: the valid class names (``className`` may then also be an index into them); each class keeps
                its colour across images.
            threshold: boxes whose probability is below it are left out of the drawing (the JSON file lists them
                under ``left_out``).

        Raises:
            ImageInputError: not an image, bad values, a malformed box, a box outside the image, an unknown class.
            RecordCallTypeError: ``name`` is not a str; an image first and a name second (lavd's order,
                ``log_image(image, name)``) is named as such.
        """
        if self._disabled():
            return
        call = "log_image()"
        if not isinstance(name, str) and isinstance(image, str):
            shape = f" of shape {tuple(name.shape)}" if hasattr(name, "shape") else f" {short_repr(name, 60)}"
            raise RecordCallTypeError(f"{call}: expected the window name first and the image second, but got "
                                      f"{type(name).__name__}{shape} and name {image!r}: this is "
                                      f"lavd's order, log_image(image, name); write log_image({image!r}, image, ...)")
        name = self._check_window(call, name, "image")
        step = check_step(call, step)
        rgb = images.to_rgb(call, image)
        height, width = rgb.shape[:2]
        shown, left_out, names = images.check_boxes(call, boxes, classes, threshold, width, height)
        drawn = images.draw_boxes(rgb, shown, names) if shown else rgb
        base = self._file("images", name, step)
        self.folder.write(call, base + ".png", images.png_bytes(drawn))
        if boxes is not None:
            self.folder.write(call, base + ".json", json.dumps({"width": width, "height": height, "classes": names,
                                                   "threshold": threshold, "boxes": shown, "left_out": left_out},
                                                  indent=2) + "\n")
        self._draw(name, "image", {name: drawn}, step)

    # the command, the summary ----------------------------------------------------------------------------------
    def log_command(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
        """Record how to run the experiment again: the command line that gives back ``args`` and a table of every
        option with its value and default; a window ``command`` and ``command.md``.

        Returns:
            The command line (``python train.py --lr=0.1 ...``), empty on a disabled run.

        Raises:
            RecordCallTypeError: ``parser`` is not an ``argparse.ArgumentParser`` or ``args`` not an
                ``argparse.Namespace``.
        """
        if self._disabled():
            return ""
        call = "log_command()"
        self._check_open(call)
        if not isinstance(parser, argparse.ArgumentParser):
            raise type_error(call, "parser", "an argparse.ArgumentParser", parser)
        if not isinstance(args, argparse.Namespace):
            raise type_error(call, "args", "an argparse.Namespace (what parser.parse_args() returns)", args)
        script = sys.argv[0] if sys.argv and sys.argv[0] else parser.prog
        command = shlex.join(["python", script, *command_line(parser, args)])
        rows = option_rows(parser, args)
        text = "\n\n".join([
            "# Command", fenced(command, "bash"),
            f"Started as: `{shlex.join(sys.argv)}`" if sys.argv else "",
            "## Options", markdown_table(["option", "value", "default", "changed"], rows)]) + "\n"
        self.folder.write(call, "command.md", text)
        self._draw_html(COMMAND_PLOT, markdown_html(text), None)
        return command

    def log_summary(self, infos: Mapping[str, Any] | None = None, sections: Mapping[str, str] | None = None,
                    repo: str | Path | None = None) -> dict[str, Any]:
        """Record what the run is: the git commit, branch and diff of a dirty tree (when ``repo``, by default the
        current folder, is in a git repository), the Python, torch and flexlogger versions, the host, the start
        time and the command, plus your ``infos`` (a table) and ``sections`` (title -> Markdown); a window
        ``summary`` and ``summary.md``.

        Returns:
            What was gathered (``{'started', 'host', 'python', 'torch', 'flexlogger', 'command', 'git', 'infos'}``;
            ``git`` is None outside a repository); empty on a disabled run.

        Raises:
            RecordCallTypeError: ``infos`` or ``sections`` is not a mapping of strings, a section is not a str,
                ``repo`` is not a path.
        """
        if self._disabled():
            return {}
        call = "log_summary()"
        self._check_open(call)
        infos = {} if infos is None else tree(call, "infos", as_mapping(call, "infos", infos))
        if sections is None:
            sections = {}
        if not isinstance(sections, Mapping):
            raise type_error(call, "sections", "a dict of title -> Markdown text", sections)
        for title, body in sections.items():
            check_name(call, title, "sections' titles")
            check_text(call, f"sections[{title!r}]", body)
        if repo is not None and not isinstance(repo, (str, os.PathLike)):
            raise type_error(call, "repo", "a folder path (str or Path) or None (the current folder)", repo)
        where = Path(repo) if repo is not None else Path.cwd()
        facts = run_facts(self.env, self.uid, self.started, infos, where)
        text = summary_markdown(facts, sections, where)
        self.folder.write(call, "summary.md", text)
        self._draw_html(SUMMARY_PLOT, markdown_html(text), None)
        return facts

    # models and objects ----------------------------------------------------------------------------------------
    def save_model(self, model: torch.nn.Module, step: float | None = None, grads: bool = False) -> Path | None:
        """Save the model's state dict as ``models/model-<step>.pt`` (``models/model.pt`` without a step),
        unwrapped from ``DataParallel``, ``DistributedDataParallel`` and ``torch.compile``, so that it loads into
        the bare model: ``model.load_state_dict(torch.load(path))``. With ``grads=True`` the parameters' gradients
        go to ``models/model-<step>.grads.pt`` (``{name: grad}``).

        Returns:
            The path, or None on a disabled run, a run without a folder (``log_dir=None``), in a forked child
            (the parent owns the folder) or when the disk refused the file (a warning says why; never raised).

        Raises:
            RecordCallTypeError: ``model`` is not a ``torch.nn.Module``, a bad step or ``grads``.
        """
        if self._disabled():
            return None
        call = "save_model()"
        if not isinstance(model, torch.nn.Module):
            raise type_error(call, "model", "a torch.nn.Module", model)
        if not isinstance(grads, bool):
            raise type_error(call, "grads", "True or False", grads)
        step = check_step(call, step)
        if self.folder.path is None:
            return None
        bare = unwrap_model(model)
        path = self.folder.path / "models" / f"model{step_suffix(step)}.pt"
        state = bare.state_dict()
        saved = self.folder.run(call, path, lambda: save_torch(call, "model", state, path))
        if grads and saved is not None:
            gradients = {n: p.grad for n, p in bare.named_parameters() if p.grad is not None}
            grads_path = self.folder.path / "models" / f"model{step_suffix(step)}.grads.pt"
            self.folder.run(call, grads_path, lambda: save_torch(call, "model", gradients, grads_path))
        return saved

    def save_obj(self, obj: Any, name: str, step: float | None = None) -> Path | None:
        """Save any picklable object with ``torch.save`` as ``objects/<name>-<step>.pt`` (load it with
        ``torch.load(path, weights_only=False)``).

        Returns:
            The path, or None on a disabled run, a run without a folder, in a forked child or when the disk
            refused the file (a warning says why; never raised).

        Raises:
            RecordCallError: ``obj`` cannot be pickled (nothing is written); a bad name or step.
        """
        if self._disabled():
            return None
        call = "save_obj()"
        name = check_name(call, name)
        step = check_step(call, step)
        if self.folder.path is None:
            return None
        path = self.folder.path / (self._file("objects", name, step) + ".pt")
        return self.folder.run(call, path, lambda: save_torch(call, "obj", obj, path))

    def file_path(self, name: str, step: float | None = None, extension: str = "") -> Path | None:
        """Where to write a file of your own in the run folder: ``files/<name>-<step><extension>`` (lavd's
        ``get_file_path``), its folder made. ``name`` is made one safe file name as the record calls' names are
        (``a/b`` -> ``a_b``); the same name, step and extension give the same path.

        Example:
            >>> np.savetxt(run.file_path('predictions', step=3, extension='.csv'), preds)

        Returns:
            The path, or None on a disabled run, a run without a folder (``log_dir=None``), in a forked child (the
            parent owns the folder) or when the folder could not be made (a warning says why; never raised).

        Raises:
            RecordCallError: a bad name or step, or an ``extension`` that is not empty or ``.`` and a file suffix
                of letters, digits, ``_`` and ``-`` (such as ``.csv`` or ``.tar.gz``).
        """
        if self._disabled():
            return None
        call = "file_path()"
        name = check_name(call, name)
        step = check_step(call, step)
        if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
            raise RecordCallError(f"{call}: expected `extension` to be '' or a file suffix such as '.csv' or "
                                  f"'.tar.gz', but got {short_repr(extension, 60)}")
        if self.folder.path is None:
            return None
        path = self.folder.path / (self._file("files", name, step) + extension)
        return self.folder.run(call, path, lambda: _made_parent(path))


def _made_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
