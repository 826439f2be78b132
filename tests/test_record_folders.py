"""The run record's folder: a folder is claimed atomically, never shared or overwritten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flexlogger.sinks.base import Update
from flexlogger.sinks.record import RecordSink, _fresh_dir, read_record


def test_two_claims_of_one_uid_before_either_writes_get_two_folders(tmp_path: Path) -> None:
    # two processes started at once with a fixed uid: each claims a folder, neither has written yet
    first = _fresh_dir(tmp_path, "run")
    second = _fresh_dir(tmp_path, "run")
    assert (first.name, second.name) == ("run", "run-2")


def test_an_empty_folder_is_used_and_a_folder_of_other_files_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()  # made by the user beforehand: empty, so it is the run's
    (tmp_path / "run-2").mkdir()
    (tmp_path / "run-2" / "notes.txt").write_text("mine")
    assert _fresh_dir(tmp_path, "run").name == "run"
    assert _fresh_dir(tmp_path, "run").name == "run-3"
    assert sorted(p.name for p in (tmp_path / "run-2").iterdir()) == ["notes.txt"]


def test_records_of_one_fixed_uid_never_share_a_folder(tmp_path: Path) -> None:
    sinks = [RecordSink(tmp_path, env="e", uid="run") for _ in range(3)]
    for i, sink in enumerate(sinks):
        sink.write(Update("p", "line", i, {"v": float(i)}, {}, 1))
    for sink in sinks:
        sink.close()
    assert [s.path.name for s in sinks] == ["run", "run-2", "run-3"]
    assert [[u.step for u in read_record(s.path).updates] for s in sinks] == [[0], [1], [2]]


RESUME_TWICE = """
import sys
from pathlib import Path
from flexlogger.sinks.base import Update
from flexlogger.sinks.record import RecordSink, read_record
root = Path(sys.argv[1])
first = RecordSink(root, env="e", uid="run")
first.write(Update("p", "line", 0, {"v": 0.0}, {}, 1))
held = RecordSink(root, env="e", uid="run", resume=True)  # while the first is open
first.close()
again = RecordSink(root, env="e", uid="run", resume=True)  # once it is closed
again.write(Update("p", "line", 1, {"v": 1.0}, {}, 1))
held.close()
again.close()
print(held.path.name, again.path.name, [u.step for u in read_record(again.path).updates])
"""


@pytest.mark.parametrize("fcntl", [True, False], ids=["posix", "no-fcntl (Windows)"])
def test_a_record_still_open_is_never_continued_and_one_closed_is(tmp_path: Path, fcntl: bool) -> None:
    """The lock on ``points.jsonl`` keeps a second record out of a folder another one still writes (a fresh folder
    is taken); once closed, ``resume=True`` continues it. Without ``fcntl`` (Windows) the package still imports and
    records, and resumes, without the lock."""
    code = ("import sys; sys.modules['fcntl'] = None\n" if not fcntl else "") + RESUME_TWICE
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    held, again, steps = out.stdout.split(" ", 2)
    assert held == ("run-2" if fcntl else "run") and again == "run"
    assert steps.strip() == "[0, 1]"
