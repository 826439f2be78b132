"""Hostile config files: billion laughs, deep nesting, huge files. Each is refused fast with a clear ConfigError."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flexlogger import ConfigError, FlexLogger
from flexlogger.config.parse import MAX_ALIASES, MAX_FILE_BYTES, parse_text, read_file
from flexlogger.errors import short_repr


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 1000
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"laughs.yaml:\d+: this value expands \(through YAML aliases\) to more than "
                                          r"100000 values; expected at most 100000 in a config"):
        FlexLogger.from_config(path)
    assert time.monotonic() - start < 5.0


def test_more_than_max_aliases_are_refused() -> None:
    text = "base: &b {type: line}\nplots:\n" + "".join(f"  p{i}: *b\n" for i in range(MAX_ALIASES + 1))
    with pytest.raises(ConfigError, match=rf"cfg.yaml:{MAX_ALIASES + 3}: more than 100 YAML aliases \(\*name\); "
                                          r"expected at most 100"):
        parse_text(text, "cfg.yaml")
    ok, _ = parse_text("base: &b {type: line}\nplots:\n" + "".join(f"  p{i}: *b\n" for i in range(MAX_ALIASES)),
                       "cfg.yaml")
    assert len(ok["plots"]) == MAX_ALIASES and ok["plots"]["p0"] == {"type": "line"}


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"cfg.yaml:1: a YAML alias refers to a value that holds it"):
        parse_text("a: &a [1, *a]\n", "cfg.yaml")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_100000_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"deep.{fmt}"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"deep\.(yaml|json)(:1)?: nested more than 64 levels deep; expected at "
                                          r"most 64 levels"):
        read_file(path)
    with pytest.raises(ConfigError, match=r"nested more than 64 levels deep"):
        FlexLogger.from_config(path)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_65_levels_are_refused_and_64_read(fmt: str) -> None:
    with pytest.raises(ConfigError, match=r"nested more than 64 levels deep"):
        parse_text("[" * 65 + "]" * 65, "cfg", fmt)
    data, _ = parse_text("[" * 64 + "]" * 64, "cfg", fmt)
    assert isinstance(data, list)


def test_a_config_file_over_1_mib_is_refused_naming_size_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    size = path.stat().st_size
    with pytest.raises(ConfigError, match=rf"config file '.*big.yaml' is {size} bytes; expected at most 1048576 "
                                          r"bytes \(1 MiB\)"):
        read_file(path)
    with pytest.raises(ConfigError, match=rf"is {size} bytes; expected at most 1048576 bytes"):
        parse_text(path.read_text(), str(path))


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"env: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"config file '.*bin.yaml': byte 5 is not UTF-8 .*; expected a UTF-8 text "
                                          r"file"):
        read_file(path)


def test_short_repr_cuts_long_values_cheaply() -> None:
    assert short_repr("abc") == "'abc'"
    assert len(short_repr("x" * 10_000)) <= 200
    huge = [list(range(1000))] * 1000  # a million numbers: a full repr would be megabytes
    start = time.monotonic()
    text = short_repr(huge)
    assert len(text) <= 200 and text.startswith("[[0, 1, 2") and time.monotonic() - start < 0.1
    assert len(short_repr({"k": "v" * 1000}, limit=50)) <= 50

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert short_repr(Broken()).startswith("<Broken instance")  # a broken __repr__ does not hide the error
