"""What a run is: git commit, branch and diff of the working tree; versions, host, start time and command (what
``log_summary`` records)."""

from __future__ import annotations

import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from flexlogger.experiment.checks import cell, flatten, jsonable
from flexlogger.experiment.textdiff import fenced, markdown_table
from flexlogger.sinks.record_format import iso
from flexlogger.version import __version__


def git_info(repo: Path) -> dict[str, Any] | None:
    """The git commit, branch, status and diff (of tracked files against HEAD, plus the untracked files' names)
    of the repository holding ``repo``; None when it is not in one or git is not installed."""

    def git(*words: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *words], capture_output=True, text=True, timeout=30,
                              check=True)
        return done.stdout

    try:
        root = git("rev-parse", "--show-toplevel").strip()
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        commit = git("rev-parse", "HEAD").strip()
    except subprocess.SubprocessError:  # a repository without a commit yet
        commit = ""
    branch = git("rev-parse", "--abbrev-ref", "HEAD").strip() if commit else git(
        "symbolic-ref", "--short", "HEAD").strip()
    status = git("status", "--porcelain").splitlines()
    diff = git("diff", "HEAD") if commit else ""
    untracked = [line[3:] for line in status if line.startswith("??")]
    return {"root": root, "commit": commit, "branch": branch, "dirty": bool(status), "changed": status,
            "untracked": untracked, "diff": diff}


def run_facts(env: str, uid: str, started: float, infos: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """``{'env', 'uid', 'started', 'host', 'python', 'torch', 'flexlogger', 'command', 'git', 'infos'}`` of a run
    (``git``: :func:`git_info` of ``where``)."""
    return {"env": env, "uid": uid, "started": iso(started), "host": socket.gethostname(),
            "python": platform.python_version(), "torch": torch.__version__, "flexlogger": __version__,
            "command": shlex.join(sys.argv), "git": git_info(where), "infos": jsonable(infos)}


def summary_markdown(facts: Mapping[str, Any], sections: Mapping[str, str], where: Path) -> str:
    """``summary.md``: a table of :func:`run_facts`, the infos, the sections and the diff of a dirty tree."""
    git = facts["git"]
    rows: list[list[Any]] = [["run", f"{facts['env']}/{facts['uid']}"], ["started", facts["started"]],
                             ["host", facts["host"]], ["python", facts["python"]], ["torch", facts["torch"]],
                             ["flexlogger", facts["flexlogger"]], ["command", facts["command"]]]
    if git is None:
        rows.append(["git", f"not a git repository: {where}"])
    else:
        changed = len(git["changed"])
        rows += [["git commit", git["commit"] or "(no commit yet)"], ["git branch", git["branch"]],
                 ["git status", f"dirty: {changed} file(s) changed or untracked" if git["dirty"] else "clean"]]
    parts = [f"# Summary of run {facts['env']}/{facts['uid']}", markdown_table(["", ""], rows)]
    if facts["infos"]:
        parts += ["## Infos", markdown_table(["key", "value"],
                                             [[k, cell(v)] for k, v in flatten(facts["infos"]).items()])]
    for title, body in sections.items():
        parts += [f"## {title}", body]
    if git is not None and git["dirty"]:
        parts += ["## Git diff", fenced(git["diff"] or "(no change to tracked files)", "diff")]
        if git["untracked"]:
            parts += ["Untracked files: " + ", ".join(f"`{f}`" for f in git["untracked"])]
    return "\n\n".join(parts) + "\n"
