"""flexlogger.io: atomic_write and append_line, on a real folder and on a real full tmpfs (tests/disk.py)."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import BinaryIO

import pytest
from disk import fill

from flexlogger.io import append_line, atomic_write


def test_atomic_write_writes_str_bytes_and_a_writer_function_and_makes_the_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "a" / "b.txt", "no folder")
    assert atomic_write(tmp_path / "a" / "b.txt", "héllo\n", make_parents=True) == tmp_path / "a" / "b.txt"
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write(tmp_path / "c.bin", b"\x00\x01")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    atomic_write(str(tmp_path / "d.bin"), lambda file: file.write(b"from a writer"))
    assert (tmp_path / "d.bin").read_bytes() == b"from a writer"
    atomic_write(tmp_path / "c.bin", b"new")  # replaces
    assert (tmp_path / "c.bin").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c.bin", "d.bin"]  # no temporary file left


def test_atomic_write_keeps_the_old_file_when_the_writer_raises(tmp_path: Path) -> None:
    atomic_write(tmp_path / "f.txt", "old")

    def half(file: BinaryIO) -> None:
        file.write(b"half of the new")
        raise ValueError("cannot pickle this")

    with pytest.raises(ValueError, match="cannot pickle this"):
        atomic_write(tmp_path / "f.txt", half)
    assert (tmp_path / "f.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_on_a_full_disk_raises_and_leaves_the_old_file_whole(small_disk: Path) -> None:
    atomic_write(small_disk / "f.txt", "old content\n")
    filler = fill(small_disk)
    with pytest.raises(OSError) as caught:
        atomic_write(small_disk / "f.txt", "x" * 100_000)
    assert caught.value.errno == errno.ENOSPC
    assert (small_disk / "f.txt").read_text() == "old content\n"  # never half a file
    assert sorted(p.name for p in small_disk.iterdir()) == ["f.txt", "filler"]  # the temporary file is gone
    filler.unlink()
    atomic_write(small_disk / "f.txt", "x" * 100_000)  # the disk takes it again
    assert (small_disk / "f.txt").read_text() == "x" * 100_000


def test_append_line_appends_whole_lines_to_a_path_and_an_fd(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    assert append_line(path, "one\n") == 4
    assert append_line(path, b"two\n") == 8
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = append_line(fd, "three\n")
        assert size == 14
        assert append_line(fd, "four\n", size) == 19
    finally:
        os.close(fd)
    assert path.read_text() == "one\ntwo\nthree\nfour\n"


def test_append_line_from_threads_never_interleaves(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"

    def writer(n: int) -> None:
        for i in range(200):
            append_line(path, f"{n:02d} {i:04d} {'y' * 200}\n")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text().split("\n")
    assert lines[-1] == "" and len(lines) == 801
    assert all(len(line) == 8 + 200 and line.endswith("y" * 200) for line in lines[:-1])


def test_append_line_on_a_full_disk_cuts_a_short_write_back_and_raises(small_disk: Path) -> None:
    """A line that only partly fits (the rest of the file's last page) is a short write: cut back off, ENOSPC."""
    path = small_disk / "log.txt"
    append_line(path, "first line\n")
    filler = fill(small_disk)  # what is left: the rest of log.txt's page
    with pytest.raises(OSError) as caught:
        append_line(path, "z" * 10_000 + "\n")
    assert caught.value.errno == errno.ENOSPC and "short write" in str(caught.value)
    assert path.read_text() == "first line\n"  # no torn line
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        with pytest.raises(OSError):
            append_line(fd, "z" * 10_000 + "\n", 11)
        assert os.fstat(fd).st_size == 11
    finally:
        os.close(fd)
    filler.unlink()
    assert append_line(path, "second line\n") == 23
    assert path.read_text() == "first line\nsecond line\n"


def test_append_line_until_the_disk_is_full_leaves_only_whole_lines(small_disk: Path) -> None:
    path = small_disk / "log.txt"
    fill(small_disk).unlink()  # the disk works
    (small_disk / "filler2").write_bytes(b"x" * (200 * 1024))  # leave about 56 KiB
    appended = refused = 0
    for i in range(2000):
        try:
            append_line(path, f"line {i:05d} " + "w" * 97 + "\n")
            appended += 1
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            refused += 1
    assert appended > 0 and refused > 0
    lines = path.read_text().split("\n")
    assert lines[-1] == "" and len(lines) - 1 == appended
    assert all(len(line) == 108 for line in lines[:-1])
