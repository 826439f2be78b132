"""What a run is: git commit, branch and diff of the working tree."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


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
