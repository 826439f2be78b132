"""A preset file is checked for size before it is read, as a config file is."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from flexlogger import ConfigError
from flexlogger.config.presets import load_preset


def test_a_huge_sparse_preset_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLEXLOGGER_PRESET_PATH", str(tmp_path))
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as file:
        file.truncate(2 << 30)  # 2 GiB of holes: no disk used, but read whole it is 2 GiB of memory
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"huge.yaml' is 2147483648 bytes; expected at most 1048576 bytes"):
        load_preset("huge")
    assert time.monotonic() - start < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 100_000  # KiB: nothing near 2 GiB read
