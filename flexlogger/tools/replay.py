"""Replay a run record (``runs/<env>/<uid>/``) to a Visdom server: ``flexlogger replay RUN_DIR --port P``.

The recorded updates go through the same :class:`~flexlogger.sinks.visdom.sender.VisdomSink` as a live run, so the
windows come out as the run drew them: by default the same windows (ids ``<uid>_<plot>`` with the uid the run drew
under, recorded in the record's first line), long series downsampled the same way. ``uid=`` draws elsewhere.

Before sending anything, replay checks that a Visdom server answers at the address (a ``POST /win_exists`` that
only Visdom answers with ``true``/``false``) and fails within a few seconds with a
:class:`~flexlogger.errors.DeliveryError` saying what answered instead: nothing, a server that accepts and never
answers, or a web server that is not Visdom.

Example:
    >>> import flexlogger
    >>> flexlogger.replay("runs/main/2026-11-23_07-50-27", port=8097)  # doctest: +SKIP
    ReplayResult(env='main', windows={'loss': '2026-11-23_07-50-27_loss'}, updates=100, points=200)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import requests

from flexlogger import defaults
from flexlogger.core.plots import APPEND_KINDS
from flexlogger.defaults import DEFAULT_PORT, DEFAULT_SERVER
from flexlogger.errors import DeliveryError, short_repr
from flexlogger.sinks.base import Update
from flexlogger.sinks.record import RecordedRun, read_record
from flexlogger.sinks.visdom.sender import VisdomSink
from flexlogger.tools.follow import RecordFollower, appended


@dataclass(frozen=True)
class ReplayResult:
    """What :func:`replay` drew: the env, ``{plot: window id}``, and how many updates and points it sent."""

    env: str
    windows: dict[str, str]
    updates: int
    points: int

    def __str__(self) -> str:
        return f"{len(self.windows)} window(s), {self.updates} update(s), {self.points} point(s) in env {self.env!r}"


PROBE_TIMEOUT = (3.0, 5.0)  # s to connect, s to answer: what "fail fast" means for a server that is not Visdom


def replay(run_dir: str | Path, server: str = DEFAULT_SERVER, port: int = DEFAULT_PORT, env: str | None = None,
           timeout: float = 120.0, uid: str | None = None, follow: bool = False, poll: float = 0.5,
           stop: threading.Event | None = None, **sink_kwargs: Any) -> ReplayResult:
    """Draw a recorded run on a Visdom server.

    Args:
        run_dir: the run folder (``<log_dir>/<env>/<uid>``, holding ``points.jsonl``).
        server, port: the Visdom server.
        env: the env to draw into; None uses the recorded env.
        uid: the uid of the windows to draw (``<uid>_<plot>``); None draws the windows the run drew.
        timeout: seconds to wait for the server to take every window.
        follow: keep drawing the lines appended to ``points.jsonl`` (by the run, or by any program: see the README
            for the line format), read every ``poll`` seconds, whole lines only, until the run is finished (its
            ``summary.json`` says a status other than ``running``) or ``stop`` is set.
        poll: seconds between two reads of the record when following.
        stop: set it (from another thread) to end following.
        **sink_kwargs: passed to :class:`~flexlogger.sinks.visdom.sender.VisdomSink` (e.g. ``max_points``).

    Returns:
        A :class:`ReplayResult`.

    Raises:
        RecordError: ``run_dir`` holds no run record (the message lists run folders found under it).
        DeliveryError: no Visdom server answers at ``server:port`` (the message says what answered instead), or it
            did not take everything within ``timeout``.
    """
    server, port = defaults.resolve("server", server), defaults.resolve("port", port)
    record: RecordFollower | RecordedRun
    batches: Iterable[Sequence[Update]]
    if follow:
        record = RecordFollower(run_dir)
        first = record.poll()  # the header first: the recorded env and uid
        batches = chain([first], (batch[0] for batch in appended([record], poll, stop)))
    else:
        record = read_record(run_dir)
        batches = [record.updates]
    env = env or record.env
    uid = uid or record.window_uid
    url = f"{server.rstrip('/')}:{port}"
    check_visdom(url, port)
    sink = VisdomSink(server=server, port=port, env=env, uid=uid, label=f"run {uid}", **sink_kwargs)
    count, points = _draw(sink, batches, url, record.path, timeout)
    return ReplayResult(env, {plot: sink.window_id(plot) for plot in record.plots}, count, points)


def _draw(sink: Any, batches: Iterable[Sequence[Update]], url: str, source: Any, timeout: float) -> tuple[int, int]:
    """Write every batch of updates, wait up to ``timeout`` for the server to take them, close the sink.

    Returns:
        ``(updates, points)`` written.

    Raises:
        DeliveryError: points the server did not take within ``timeout`` (a failed write raises as it is, after
            the sink is closed).
    """
    count = points = 0
    try:
        for updates in batches:
            for update in updates:
                sink.write(update)
            count += len(updates)
            points += sum(len(u.data) for u in updates if u.kind in APPEND_KINDS)
        pending = sink.flush(timeout)
    finally:
        sink.close()
    if pending:
        raise DeliveryError(f"the Visdom server at {url} did not take {pending} point(s) of {source} within "
                            f"{timeout:g} s")
    return count, points


def check_visdom(url: str, port: int) -> None:
    """Fail fast unless a Visdom server answers at ``url``.

    Raises:
        DeliveryError: nothing answers, the server accepts but does not answer within a few seconds, or it answers
            as something other than Visdom; the message says which.
    """
    hint = f"start one with `flexlogger serve --port {port}`, then run the replay again"
    try:
        answer = requests.post(f"{url}/win_exists", data=json.dumps({"win": "flexlogger-probe", "eid": "main"}),
                               timeout=PROBE_TIMEOUT)
    except requests.ConnectTimeout:
        raise DeliveryError(f"no Visdom server answers at {url}: connecting timed out after {PROBE_TIMEOUT[0]:g} s; "
                            f"{hint}") from None
    except requests.ConnectionError as exc:
        raise DeliveryError(f"no Visdom server answers at {url} ({type(exc).__name__}); {hint}") from None
    except requests.Timeout:
        raise DeliveryError(f"no Visdom server answers at {url}: something accepted the connection but sent no "
                            f"answer within {PROBE_TIMEOUT[1]:g} s; expected a Visdom server there ({hint})") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"no Visdom server answers at {url} ({type(exc).__name__}: {exc}); {hint}") from None
    body = answer.text.strip()
    if answer.status_code in (400, 401) and not body:
        return  # Visdom with a login (0.2.4 answers 400, 0.3 401): the sink logs in, or says why it cannot
    if answer.status_code != 200 or body not in ("true", "false"):
        server = answer.headers.get("Server", "unknown")
        raise DeliveryError(f"the server at {url} is not a Visdom server: POST /win_exists answered HTTP "
                            f"{answer.status_code} {short_repr(body, 80)} (server {server!r}); expected a Visdom "
                            f"server, which answers true or false; {hint}")
