"""Config files: a save that fails leaves the old file whole; a path that is no file is refused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from flexlogger import ConfigError
from flexlogger.config.config import load_config, save_config

CONFIG = {"plots": {"loss": {"type": "line"}}, "meters": {"train_loss": {"type": "AverageValueMeter",
                                                                         "target": "loss"}}}


def test_save_config_on_a_full_disk_leaves_the_old_file_whole(small_disk: Path) -> None:
    path = save_config(CONFIG, small_disk / "c.yaml")
    old = path.read_text()
    with open(small_disk / "filler", "wb", buffering=0) as file:  # fill what is left, but for a few bytes
        try:
            while file.write(b"x" * 1024):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    big = {**CONFIG, "meters": {f"m{i}": {"type": "AverageValueMeter", "target": "loss"} for i in range(3000)}}
    with pytest.raises(OSError):
        save_config(big, path)
    assert path.read_text() == old and load_config(path).to_dict()["meters"] == CONFIG["meters"]
    assert sorted(p.name for p in small_disk.iterdir()) == ["c.yaml", "filler"]  # no temporary file left


def test_a_config_path_that_is_a_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"^config file '.*c\.yaml' is not a regular file; expected the path of a "
                                          r"\.yaml, \.yml or \.json file$"):
        load_config(fifo)
