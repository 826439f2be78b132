"""Names that a file system cannot take as they are: two names whose safe file names are the same never overwrite
each other's files."""

from __future__ import annotations

from pathlib import Path

import torch

from flexlogger import Run


def test_names_that_sanitise_alike_get_files_of_their_own(tmp_path: Path) -> None:
    with Run(env="e", uid="u", server=None, log_dir=tmp_path) as run:
        paths = [run.save_obj(name, name) for name in ("~", "€", "\ud800", "~")]
        texts = [run.log_text(name, f"text of {name!r}") for name in ("a b", "a/b", "a b")]
    assert texts == [None] * 3
    assert paths[0] == paths[3] and len({paths[0], paths[1], paths[2]}) == 3
    assert paths[0] is not None and paths[0].name == "_.pt"
    for path, name in zip(paths[:3], ("~", "€", "\ud800")):
        assert path is not None and torch.load(path, weights_only=False) == name
    folder = tmp_path / "e" / "u" / "text"
    shown = sorted(p.read_text() for p in folder.iterdir())
    assert shown == ["text of 'a b'", "text of 'a/b'"]


def test_steps_that_differ_past_six_digits_get_files_of_their_own(tmp_path: Path) -> None:
    with Run(env="e", uid="u", server=None, log_dir=tmp_path) as run:
        paths = [run.save_obj(step, "x", step=step) for step in (1234567.5, 1234567.25, 0.5)]
    assert [p.name for p in paths if p is not None] == ["x-1234567.5.pt", "x-1234567.25.pt", "x-0.5.pt"]
