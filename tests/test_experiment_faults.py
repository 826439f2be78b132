"""The experiment record (Run's calls) under faults: hostile input, a full disk, forked children, exit."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from disk import fill

from flexlogger import ConfigError, FlexLogger, Run
from flexlogger.errors import RunFolderError
from flexlogger.experiment import RecordCallError, RecordCallTypeError
from flexlogger.experiment.images import ImageInputError, to_rgb
from flexlogger.tools.server import VisdomServer, start_server


def test_record_calls_on_a_full_disk_warn_count_and_never_raise(small_disk: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with Run(env="e", uid="run", server=None, log_dir=small_disk) as run:
        run.log_text("before", "x")
        filler = fill(small_disk)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.log_text("t", "y" * 10_000, step=1)
            run.log_markdown("m", "z" * 10_000)
            run.log_hparams({"lr": "w" * 10_000})
            run.println("a line " + "v" * 10_000)
            assert list(run.progress(range(2))) == [0, 1]
            assert run.save_obj(torch.zeros(10_000), "big") is None
            assert run.save_model(torch.nn.Linear(100, 100)) is None
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        cannot = [m for m in messages if "could not be written" in m]
        assert len(cannot) == 1, messages  # once per outage
        assert re.search(r"log_text\(\): .*text/t-1\.txt could not be written \(No space left on device\); training "
                         r"goes on", cannot[0])
        assert caught[0].filename == __file__  # pointed at the user's call
        filler.unlink()
        run.log_text("after", "x")  # space is back: written again
        assert (run.dir / "text" / "after.txt").read_text() == "x"
    summary = json.loads((small_disk / "e" / "run" / "summary.json").read_text())
    assert summary["files_unwritten"] >= 6 and summary["status"] == "finished"
    assert "a line" in capsys.readouterr().out  # printed all the same


def test_record_calls_with_a_vanished_folder_warn_instead_of_raising(tmp_path: Path) -> None:
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        assert run.dir is not None
        (run.dir / "text").write_text("a file where the folder should be")
        (run.dir / "log.txt").mkdir()
        with pytest.warns(RuntimeWarning, match=r"log_text\(\): .*could not be written"):
            run.log_text("t", "x")
        run.println("x")  # the same outage: counted, not warned again
        run.eprintln("x")
    assert json.loads((tmp_path / "e" / "run" / "summary.json").read_text())["files_unwritten"] == 3


def test_println_warns_naming_itself_when_log_txt_cannot_be_written(tmp_path: Path) -> None:
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        assert run.dir is not None
        (run.dir / "log.txt").mkdir()
        with pytest.warns(RuntimeWarning, match=r"println\(\): .*log\.txt could not be written \(Is a directory\)"):
            run.println("x")


def test_a_forked_child_writes_no_file_into_the_parents_run_folder(tmp_path: Path) -> None:
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        assert run.dir is not None
        run.log_text("parent", "x")
        run.flush(10)
        before = sorted(p.relative_to(run.dir) for p in run.dir.rglob("*"))
        log_before = (run.dir / "log.txt").read_bytes() if (run.dir / "log.txt").exists() else b""
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    run.log_text("child", "x", step=1)
                    run.log_hparams({"child": 1})
                    run.println("from the child")
                    if run.save_obj(1, "child") is not None or run.save_model(torch.nn.Linear(1, 1)) is not None:
                        code = 4
                forked = [w for w in caught if "this forked child" in str(w.message) and "run folder" in
                          str(w.message)]
                code = code or (0 if len(forked) == 1 else 3)  # warned once
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sorted(p.relative_to(run.dir) for p in run.dir.rglob("*")) == before
        assert (run.dir / "log.txt").read_bytes() == log_before if log_before else not (run.dir / "log.txt").exists()
        run.log_text("parent2", "y")  # the parent still writes
        assert (run.dir / "text" / "parent2.txt").read_text() == "y"


def test_long_names_make_short_distinct_files_inside_the_run_folder(tmp_path: Path) -> None:
    a, b = "a" * 300 + "/x", "a" * 300 + "/y"
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        assert run.dir is not None
        run.log_text(a, "1", step=3, expected="0")
        run.log_text(b, "2", step=3)
        run.log_markdown("m" * 1000, "# x")
        run.log_image("i" * 1000, np.zeros((4, 4)), boxes=[{"xStart": 0, "yStart": 0, "xEnd": 1, "yEnd": 1}])
        saved = run.save_obj({"k": 1}, "o" * 1000, step=2)
        assert saved is not None and saved.parent == run.dir / "objects" and len(saved.name) <= 255
        files = [p for p in run.dir.rglob("*") if p.is_file()]
        assert all(len(p.name) <= 255 and run.dir in p.parents for p in files)
        texts = sorted(p.read_text() for p in (run.dir / "text").glob("a*.txt") if not p.name.endswith(".diff.txt"))
        assert texts == ["1", "2"]  # two names, two files
        assert len(list((run.dir / "images").iterdir())) == 2  # .png and .json


@pytest.mark.parametrize("call", ["log_text", "log_markdown", "save_obj"])
def test_a_step_beyond_a_float_is_refused_naming_the_call(tmp_path: Path, call: str) -> None:
    match = rf"{call}\(\): expected `step` to be a finite number or None, but got 1000000.*0000"
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run, pytest.raises(RecordCallError, match=match):
        if call == "save_obj":
            run.save_obj(1, "x", step=10**400)
        else:
            getattr(run, call)("x", "y", step=10**400)


def test_a_box_coordinate_beyond_a_float_is_refused(tmp_path: Path) -> None:
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        with pytest.raises(ImageInputError, match=r"log_image\(\): expected `boxes\[0\]\['xEnd'\]` to be a finite "
                                                  r"number of pixels, but got int 1000"):
            run.log_image("i", np.zeros((4, 4)), boxes=[{"xStart": 0, "yStart": 0, "xEnd": 10**400, "yEnd": 1}])
        with pytest.raises(ImageInputError, match=r"expected `boxes\[0\]\['probability'\]` to be a number in \[0, 1\]"):
            run.log_image("i", np.zeros((4, 4)), boxes=[{"xStart": 0, "yStart": 0, "xEnd": 1, "yEnd": 1,
                                                         "probability": 10**400}])


def test_a_bfloat16_image_is_drawn_as_its_float32_copy(tmp_path: Path) -> None:
    image = torch.rand(3, 5, 6).to(torch.bfloat16)
    assert (to_rgb("log_image()", image) == to_rgb("log_image()", image.float())).all()
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        run.log_image("i", image, step=1)
        assert run.dir is not None and (run.dir / "images" / "i-1.png").is_file()


@pytest.mark.parametrize("call", ["log_hparams", "log_summary"])
def test_hparams_that_hold_themselves_are_refused_not_a_recursion_error(tmp_path: Path, call: str) -> None:
    loop: dict[str, Any] = {"lr": 0.1}
    loop["self"] = loop
    listed: list[Any] = [1]
    listed.append(listed)
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        arg = "hparams" if call == "log_hparams" else "infos"
        for value in (loop, {"l": listed}):
            with pytest.raises(RecordCallError, match=rf"{call}\(\): expected `{arg}` to be a tree of values, but it "
                                                      r"holds itself"):
                getattr(run, call)(value)
        assert run.dir is not None and not (run.dir / "hparams.json").exists()


@pytest.mark.parametrize(("raise_", "status"), [("raise RuntimeError('boom')", "crashed"),
                                                ("raise KeyboardInterrupt", "interrupted"), ("pass", "finished")])
def test_a_run_forgotten_at_exit_records_how_the_script_ended(tmp_path: Path, raise_: str, status: str) -> None:
    script = textwrap.dedent(f"""
        import flexlogger
        run = flexlogger.Run(env="e", uid="run", server=None, log_dir={str(tmp_path)!r})
        run.log_text("t", "x", step=4)
        {raise_}
        """)
    (tmp_path / "train.py").write_text(script)
    subprocess.run([sys.executable, str(tmp_path / "train.py")], capture_output=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    summary = json.loads((tmp_path / "e" / "run" / "summary.json").read_text())
    assert summary["status"] == status and summary["updates"] == 1
    if status == "crashed":
        assert summary["error"] == "RuntimeError: boom" and "raise RuntimeError('boom')" in summary["traceback"]
    elif status == "interrupted":
        assert summary["error"] == "KeyboardInterrupt"
    else:
        assert "error" not in summary


def test_an_env_visdom_cannot_show_is_refused_by_the_call_before_any_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Run\(\): env: expected `env` to be a Visdom env name without '/' "):
        Run(env="a/b", log_dir=tmp_path, port=1)
    with pytest.raises(ConfigError, match=r"^FlexLogger\(\): env: expected `env` to be a Visdom env name without "
                                          r"'<', '>'"):
        FlexLogger({"loss": {"type": "line"}}, {}, env="<b>", log_dir=tmp_path, port=1)
    with pytest.raises(ConfigError, match=r"env: expected `env` to be a Visdom env name without '/'"):
        Run(env="a/b", log_dir=tmp_path, port=1, disabled=True)
    assert list(tmp_path.iterdir()) == []  # no folder, no thread
    with Run(env="a/b", log_dir=tmp_path, server=None) as run:  # nothing sent to Visdom: any env names a folder
        assert run.dir == tmp_path / "a_b" / run.uid


@pytest.fixture(scope="module")
def login_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VisdomServer]:
    root = tmp_path_factory.mktemp("login")
    server = start_server(env_path=root / "env", log_path=root / "server.log", username="u", password="right")
    yield server
    server.stop()


def test_enable_that_failed_fails_again_instead_of_logging_into_a_closed_record(
        tmp_path: Path, login_server: VisdomServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISDOM_USERNAME", raising=False)
    monkeypatch.delenv("VISDOM_PASSWORD", raising=False)
    run = Run(env="e", uid="run", log_dir=tmp_path, port=login_server.port, username="u", password="wrong",
              disabled=True)
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"refused the login of user 'u'"):
            run.enable()
        assert run.disabled and run.dir is None
    run.log_text("t", "x")  # still disabled: nothing, and no error
    run.close()
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.rglob("summary.json"))]
    assert [s["status"] for s in summaries] == ["failed to start", "failed to start"]


@pytest.mark.parametrize("timeout", ["x", math.nan, -1, True])
def test_flush_refuses_a_timeout_that_is_no_number_of_seconds(tmp_path: Path, timeout: object) -> None:
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        with pytest.raises(ConfigError, match=r"^flush\(\): expected `timeout` to be a number of seconds >= 0 or None "
                                              r"\(wait until delivered\), but got "):
            run.flush(timeout)  # type: ignore[arg-type]
        stat = FlexLogger({"loss": {"type": "line"}}, {}, run=run)
        with pytest.raises(ConfigError, match=r"^flush\(\): expected `timeout`"):
            stat.flush(timeout)  # type: ignore[arg-type]
        assert run.flush(0) == 0 and run.flush(1.5) == 0 and run.flush(None) == 0


def test_a_log_dir_that_cannot_hold_a_folder_is_refused_naming_the_call(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match=r"^Run\(\): the run record cannot be made under log_dir '.*afile': Not a "
                                             r"directory \(.*afile/e/.*\); expected `log_dir` to be a folder this "
                                             r"process can write, or None to turn the record off$"):
        Run(env="e", log_dir=blocker, server=None)
    with pytest.raises(OSError, match=r"^FlexLogger\(\): the run record cannot be made under log_dir"):
        FlexLogger({"loss": {"type": "line"}}, {}, log_dir=blocker, server=None)
    run = Run(env="e", log_dir=blocker, server=None, disabled=True)
    with pytest.raises(RunFolderError, match=r"^enable\(\): the run record cannot be made"):
        run.enable()
    run.close()


@pytest.mark.parametrize(("option", "message"), [
    ("env", r"^Run\(\): env: expected a non-empty string \(the Visdom environment\) without NUL characters, but got "
            r"'a\\x00b'$"),
    ("uid", r"^Run\(\): uid: expected a non-empty string without NUL characters, or None for a new uid"),
])
def test_an_env_or_uid_with_a_nul_is_refused_naming_the_call(tmp_path: Path, option: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Run(log_dir=tmp_path, server=None, **{option: "a\x00b"})
    assert list(tmp_path.iterdir()) == []


def test_println_to_a_closed_stdout_warns_once_and_still_writes_log_txt(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)  # `python train.py | head` after head exited: a broken pipe
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.println("first")
            run.println("second")
            run.print_table(["a"], [[1]])
        messages = [str(w.message) for w in caught]
        pattern = (r"println\(\): .* cannot be written \(I/O operation on closed file\.?\); the lines still go to "
                   r".*log\.txt$")
        assert len(messages) == 1 and re.match(pattern, messages[0]), messages
        assert run.dir is not None
        logged = (run.dir / "log.txt").read_text()
    assert "first" in logged and "second" in logged


@pytest.mark.parametrize(("code", "status"), [(0, "finished"), (None, "finished"), (3, "crashed")])
def test_sys_exit_in_a_with_block_is_finished_when_it_says_success(tmp_path: Path, code: int | None,
                                                                   status: str) -> None:
    with pytest.raises(SystemExit), Run(env="e", uid="run", server=None, log_dir=tmp_path):
        sys.exit(code)
    summary = json.loads((tmp_path / "e" / "run" / "summary.json").read_text())
    assert summary["status"] == status
    assert ("error" in summary) == (status == "crashed")


def test_text_and_image_calls_cannot_draw_over_the_runs_own_windows_or_change_a_windows_kind(tmp_path: Path) -> None:
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        run.log_hparams({"lr": 0.1})
        for name in ("hparams", "command", "run_summary", "run_status"):
            with pytest.raises(RecordCallError, match=rf"^log_text\(\): expected a window name other than the run's "
                                                      rf"own windows \(command, hparams, run_status, run_summary\), "
                                                      rf"but got '{name}'$"):
                run.log_text(name, "oops")
        run.log_text("x", "hello", step=1)
        run.log_markdown("x", "# also text")  # the same kind: replaces it
        with pytest.raises(RecordCallError, match=r"^log_image\(\): expected a window name that is free or of kind "
                                                  r"'image', but window 'x' of this run is of kind 'text'$"):
            run.log_image("x", np.zeros((4, 4)), step=2)
        run.log_image("y", np.zeros((4, 4)))
        with pytest.raises(RecordCallError, match=r"^log_text\(\): .* window 'y' of this run is of kind 'image'$"):
            run.log_text("y", "z")
        assert run.dir is not None
        assert not (run.dir / "images" / "x-2.png").exists() and not (run.dir / "text" / "y.txt").exists()
        assert json.loads((run.dir / "hparams.json").read_text()) == {"lr": 0.1}


def test_log_summary_refuses_a_repo_that_is_no_path(tmp_path: Path) -> None:
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:
        with pytest.raises(RecordCallTypeError, match=r"^log_summary\(\): expected `repo` to be a folder path \(str or "
                                                      r"Path\) or None \(the current folder\), but got int 5$"):
            run.log_summary(repo=5)  # type: ignore[arg-type]
        assert run.dir is not None and not (run.dir / "summary.md").exists()


def test_record_calls_from_several_threads_write_whole_files_without_a_warning(tmp_path: Path) -> None:
    texts = [f"thread {i} " * (50 + i) for i in range(6)]
    with Run(env="e", uid="run", server=None, log_dir=tmp_path) as run:

        def work(i: int) -> None:
            for _ in range(100):
                run.log_text("t", texts[i])
                run.log_hparams({f"h{i}": i})

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert [str(w.message) for w in caught] == []  # a shared temporary file made writes fail
        assert run.dir is not None and (run.dir / "text" / "t.txt").read_text() in texts
        json.loads((run.dir / "hparams.json").read_text())
    summary = json.loads((tmp_path / "e" / "run" / "summary.json").read_text())
    assert summary["files_unwritten"] == 0
    assert [p.name for p in (tmp_path / "e" / "run").rglob("*.tmp")] == []
