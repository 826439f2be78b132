"""The experiment record (flexlogger.experiment): each call read back from the real Visdom server and from the
run folder; bad input raises naming the call, the argument, what was expected and what came."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import visdom
from PIL import Image
from torch import nn

import flexlogger
from flexlogger import ConfigError, FlexLogger, Run
from flexlogger.experiment import RecordCallError, RecordCallTypeError, unwrap_model
from flexlogger.experiment.images import COORDS, PALETTE, ImageInputError
from flexlogger.sinks.base import Update
from flexlogger.sinks.record import read_record
from flexlogger.sinks.visdom.legible import upscale_factor
from flexlogger.tools.server import VisdomServer

LOSS = {"loss": {"type": "line"}}
TRAIN = {"train_loss": {"type": "AverageValueMeter", "target": "loss"}}


def window(viz: visdom.Visdom, run: Run, plot: str) -> dict[str, Any]:
    """The window of ``plot`` as the server holds it, once the run delivered everything."""
    assert run.flush(10) == 0
    data: dict[str, Any] = json.loads(viz.get_window_data(run.window_id(plot), run.env))
    return data


def updates(run: Run) -> list[Update]:
    """Every update in the run's record, once the record wrote everything it was given."""
    assert run.dir is not None and run.flush(10) == 0
    return read_record(run.dir).updates


def cells(content: str) -> dict[str, str]:
    """``{name: value}`` of a text window's table (the rows the renderer drew)."""
    return dict(re.findall(r"<tr><td><b>(.*?)</b></td><td>(.*?)</td></tr>", content))


@pytest.fixture
def run(tmp_path: Path, visdom_server: VisdomServer, env: str) -> Any:
    with Run(env=env, port=visdom_server.port, log_dir=tmp_path, min_interval=0.0) as run:
        yield run


def test_log_hparams_nested_dict_table_window_and_json(run: Run, viz: visdom.Visdom) -> None:
    run.log_hparams({"lr": 0.1, "optim": {"name": "adam<b>", "betas": (0.9, 0.999)}, "path": Path("/data"),
                     "seed": None})
    run.log_hparams(argparse.Namespace(epochs=3, optim={"name": "sgd"}))  # merged: later values win, key by key
    assert run.dir is not None
    stored = json.loads((run.dir / "hparams.json").read_text())
    assert stored == {"lr": 0.1, "optim": {"name": "sgd", "betas": [0.9, 0.999]}, "path": "/data", "seed": None,
                      "epochs": 3}
    assert run.hparams == stored
    win = window(viz, run, "hparams")
    assert win["title"] == "hparams"
    assert cells(win["content"]) == {"lr": "0.1", "optim.name": "sgd", "optim.betas": "[0.9, 0.999]",
                                     "path": "/data", "seed": "-", "epochs": "3"}
    run.log_hparams({"note": "<script>x</script>"})
    assert cells(window(viz, run, "hparams")["content"])["note"] == "&lt;script&gt;x&lt;/script&gt;"
    recorded = [u for u in updates(run) if u.plot == "hparams"]
    assert len(recorded) == 3 and recorded[-1].kind == "text" and recorded[-1].data["optim.name"] == "sgd"


def test_flexlogger_hands_log_hparams_to_its_run(tmp_path: Path, visdom_server: VisdomServer, env: str,
                                                 viz: visdom.Visdom) -> None:
    with FlexLogger(LOSS, TRAIN, env=env, port=visdom_server.port, log_dir=tmp_path) as stat:
        stat.log_hparams({"batch_size": 32})
        assert cells(window(viz, stat.run, "hparams")["content"]) == {"batch_size": "32"}
        assert stat.run_dir is not None
        assert json.loads((stat.run_dir / "hparams.json").read_text()) == {"batch_size": 32}


@pytest.mark.parametrize(("value", "match"), [
    ([1, 2], r"log_hparams\(\): expected `hparams` to be a dict \(nested dicts allowed\), an argparse.Namespace or "
             r"a dataclass instance, but got list \[1, 2\]"),
    ({"a": {3: 1}}, r"log_hparams\(\): expected the keys of `hparams` to be non-empty strings, but got int 3 at "
                    r"hparams\['a'\]\[3\]"),
])
def test_log_hparams_bad_input_writes_nothing(run: Run, value: Any, match: str) -> None:
    with pytest.raises(RecordCallTypeError, match=match):
        run.log_hparams(value)
    assert run.dir is not None and not (run.dir / "hparams.json").exists()


def test_disabled_log_hparams_writes_no_file_and_starts_no_thread(tmp_path: Path, env: str) -> None:
    before = set(threading.enumerate())
    with Run(env=env, log_dir=tmp_path, port=1, disabled=True) as run:
        run.log_hparams({"lr": 0.1})
        run.log_hparams("not even a dict")  # a no-op: nothing is looked at
        assert set(threading.enumerate()) == before
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def content(viz: visdom.Visdom, run: Run, plot: str) -> str:
    """The HTML a text window shows."""
    return str(window(viz, run, plot)["content"])


def holds(viz: visdom.Visdom, run: Run, plot: str, drawn: str) -> bool:
    """Whether the server's window holds the HTML ``drawn`` as it is (the renderer draws ``opts['html']`` windows
    unescaped: their user text was escaped when the HTML was made)."""
    return drawn in content(viz, run, plot)


def test_log_text_plain_is_shown_escaped_and_stored(run: Run, viz: visdom.Visdom) -> None:
    run.log_text("sample", "a <b> & c\nline 2", step=3)
    assert run.dir is not None
    assert (run.dir / "text" / "sample-3.txt").read_text() == "a <b> & c\nline 2"
    assert cells(content(viz, run, "sample")) == {"sample": "a &lt;b&gt; &amp; c<br>line 2"}
    run.log_text("sample", "no step")
    assert (run.dir / "text" / "sample.txt").read_text() == "no step"


def test_log_text_expected_marks_the_word_diff(run: Run, viz: visdom.Visdom) -> None:
    run.log_text("translation", "the dog sat <here>", step=1, expected="the cat sat <here>")
    assert run.dir is not None
    assert (run.dir / "text" / "translation-1.txt").read_text() == "the dog sat <here>"
    assert (run.dir / "text" / "translation-1.diff.txt").read_text() == "the [-cat-]{+dog+} sat <here>"
    drawn = [u for u in updates(run) if u.plot == "translation"][-1]
    assert drawn.opts["html"] is True
    html_text = drawn.data["translation"]
    assert re.search(r"<del [^>]*>cat</del><ins [^>]*>dog</ins>", html_text)
    assert "&lt;here&gt;" in html_text and "<here>" not in html_text  # the user's text escaped
    # the server holds that HTML as it is
    assert holds(viz, run, "translation", html_text)


def test_html_windows_are_drawn_as_html(run: Run, viz: visdom.Visdom) -> None:
    run.log_text("translation", "the dog", expected="the cat")
    shown = content(viz, run, "translation")
    assert re.search(r"<del [^>]*>cat</del>", shown) and "&lt;del" not in shown


def test_log_markdown_renders_safely_and_stores_md(run: Run, viz: visdom.Visdom) -> None:
    source = "# Results\n\n**top-1** is `x<y` <script>alert(1)</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    run.log_markdown("notes", source, step=2)
    assert run.dir is not None
    assert (run.dir / "text" / "notes-2.md").read_text() == source
    drawn = [u for u in updates(run) if u.plot == "notes"][-1].data["notes"]
    assert "<h1>Results</h1>" in drawn and "<strong>top-1</strong>" in drawn and "<code>x&lt;y</code>" in drawn
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in drawn and "<script>" not in drawn
    assert "<td>1</td>" in drawn
    assert holds(viz, run, "notes", drawn)


def test_text_calls_refuse_bad_input(run: Run) -> None:
    with pytest.raises(RecordCallTypeError, match=r"log_text\(\): expected `text` to be a str, but got int 5"):
        run.log_text("a", 5)  # type: ignore[arg-type]
    with pytest.raises(RecordCallTypeError, match=r"log_text\(\): expected `expected` to be a str, but got list"):
        run.log_text("a", "x", expected=["x"])  # type: ignore[arg-type]
    with pytest.raises(RecordCallTypeError, match=r"log_text\(\): expected `name` to be a non-empty string, but got "
                                                  r"NoneType None"):
        run.log_text(None, "x")  # type: ignore[arg-type]
    with pytest.raises(RecordCallError, match=r"log_markdown\(\): expected `name` to be a non-empty string, but got "
                                              r"' '"):
        run.log_markdown(" ", "x")
    with pytest.raises(RecordCallTypeError, match=r"log_text\(\): expected `step` to be a finite number or None, "
                                                  r"but got str '3'"):
        run.log_text("a", "x", step="3")  # type: ignore[arg-type]
    with pytest.raises(RecordCallError, match=r"log_markdown\(\): expected `step` to be a finite number or None, "
                                              r"but got nan"):
        run.log_markdown("a", "x", step=float("nan"))
    with pytest.raises(RecordCallTypeError, match=r"log_markdown\(\): expected `markdown` to be a str, but got "
                                                  r"bytes"):
        run.log_markdown("a", b"x")  # type: ignore[arg-type]
    assert run.dir is not None and not (run.dir / "text").exists()


def test_a_record_call_cannot_take_a_loggers_window(run: Run) -> None:
    FlexLogger(LOSS, TRAIN, run=run)
    with pytest.raises(ConfigError, match=r"plot\(s\) 'loss' are already drawn by another logger"):
        run.log_text("loss", "x")


# lavd's argument order ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "args", "kwargs", "match"), [
    # the issue's call, then lavd's own docstring examples (jungomi/lavd, py/lavd/log.py), as lavd users write them
    ("log_text", ("hello world", "sample2"), {"step": 1},
     r"^log_text\(\): expected the window name first and the text second, but got name 'hello world' \(with "
     r"whitespace, so not a window name\) and text 'sample2': this is lavd's order, log_text\(text, name\); write "
     r"log_text\('sample2', 'hello world', \.\.\.\)\. A window name has no whitespace: if 'hello world' is the name, "
     r"write it as 'hello_world'$"),
    ("log_text", ("The quick brown fox...", "famous-sentence"), {"step": 1},
     r"write log_text\('famous-sentence', 'The quick brown fox\.\.\.', \.\.\.\)"),
    ("log_text", ("hello world", "with-diff"), {"step": 2, "expected": "Hallo Welt"},
     r"log_text\(text, name\); write log_text\('with-diff', 'hello world', \.\.\.\)"),
    ("log_markdown", ("# Hello\n\nMore markdown...", "some-markdown"), {},
     r"^log_markdown\(\): expected the window name first and the markdown second, .* this is lavd's order, "
     r"log_markdown\(markdown, name\); write log_markdown\('some-markdown', "),
    ("log_image", (np.zeros((4, 4)), "bird"), {"step": 1},
     r"^log_image\(\): expected the window name first and the image second, but got ndarray of shape \(4, 4\) and name "
     r"'bird': this is lavd's order, log_image\(image, name\); write log_image\('bird', image, \.\.\.\)$"),
])
def test_a_call_in_lavds_argument_order_is_refused_before_anything_is_written(
        run: Run, call: str, args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    """lavd takes the content first (``log_text(text, name, step)``), flexlogger the name: a lavd call used to
    write ``text/hello_world-1.txt`` holding ``'sample2'``. It is refused, with the call in flexlogger's order."""
    error = RecordCallTypeError if call == "log_image" else RecordCallError
    with pytest.raises(error, match=match):
        getattr(run, call)(*args, **kwargs)
    assert run.dir is not None and not (run.dir / "text").exists() and not (run.dir / "images").exists()
    assert updates(run) == []
    getattr(run, call)(args[1], *args[:1], **kwargs)  # the same call in flexlogger's order is taken
    assert updates(run)[-1].plot == args[1]


def test_legitimate_names_and_texts_are_taken_whatever_their_spaces(run: Run) -> None:
    """Only a name with whitespace beside a one-word content is taken as swapped: a name with spaces beside text
    with spaces, a one-word text, line breaks in the text, a long one-word name are taken as written; a key and its
    value (``keyed_text``, what integrations such as flexlogger.wandb call) are never swapped."""
    run.log_text("sample", "a b\nc", step=1)
    run.log_text("val sample", "the cat sat", step=1)
    run.log_text("note", "ok")
    run.log_markdown("m" * 1000, "# x")
    run.log_text("a", "x" * 500)  # a long one-word text is no name: taken
    run.calls.keyed_text("my note", "ok")
    assert run.dir is not None
    files = {p.name: p.read_text() for p in (run.dir / "text").iterdir()}
    assert files["sample-1.txt"] == "a b\nc" and files["val_sample-1.txt"] == "the cat sat"
    assert files["note.txt"] == "ok" and files["my_note.txt"] == "ok" and files["a.txt"] == "x" * 500
    with pytest.raises(RecordCallError, match=r"this is lavd's order"):
        run.log_text("my note", "ok")  # the same pair through log_text: taken as swapped (rename the window)
    # the case no rule can tell: a one-word text beside a one-word name, in lavd's order, is taken as written
    run.log_text("hello", "greeting")
    assert (run.dir / "text" / "hello.txt").read_text() == "greeting"


# images ---------------------------------------------------------------------------------------------------------
BOX = {"xStart": 10, "yStart": 20, "xEnd": 40, "yEnd": 50, "className": "cat", "probability": 0.9}


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_log_image_draws_boxes_by_pixel_and_leaves_out_those_below_threshold(run: Run, viz: visdom.Visdom) -> None:
    image = torch.zeros(3, 64, 80)  # C x H x W floats in [0, 1], black
    low = {"xStart": 50, "yStart": 30, "xEnd": 70, "yEnd": 60, "className": "dog", "probability": 0.2}
    run.log_image("detections", image, step=4, boxes=[BOX, low], classes=["cat", "dog"], threshold=0.5)
    assert run.dir is not None
    drawn = png(run.dir / "images" / "detections-4.png")
    s = upscale_factor(64, 80)  # a small image is scaled up (sharp squares) so that its labels can be read
    assert s == 4 and drawn.shape == (64 * s, 80 * s, 3)
    assert (drawn[::s, ::s][:, 50:] == drawn[s - 1::s, s - 1::s][:, 50:]).all()  # each pixel a square of s x s
    cat = np.array(PALETTE[0])
    assert (drawn[35 * s, 10 * s] == cat).all() and (drawn[35 * s, 10 * s + 1] == cat).all()  # left edge, 2 px
    assert (drawn[35 * s, 40 * s - 1] == cat).all() and (drawn[50 * s - 1, 25 * s] == cat).all()  # right, bottom
    assert (drawn[35 * s, 25 * s] == 0).all() and (drawn[35 * s, 10 * s + 2] == 0).all()  # inside: untouched
    label_tag = drawn[20 * s - 14:20 * s, 10 * s:10 * s + 40]  # "cat 0.90" on a tag above the box's corner
    assert (label_tag == cat).all(axis=-1).sum() > 50 and (label_tag.min(axis=-1) > 200).sum() > 10
    assert (drawn[:, 50 * s:][drawn[:, 50 * s:].any(axis=-1)].size == 0)  # the dog box (p=0.2 < 0.5) is not drawn
    boxes = json.loads((run.dir / "images" / "detections-4.json").read_text())
    assert boxes["boxes"] == [{**{k: float(v) for k, v in BOX.items() if k in COORDS}, "className": "cat",
                               "probability": 0.9}]
    assert [b["className"] for b in boxes["left_out"]] == ["dog"] and boxes["threshold"] == 0.5
    shown = window(viz, run, "detections")["content"]
    src = shown["src"] if isinstance(shown, dict) else shown
    encoded = src.split("base64,", 1)[1]
    from_server = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))
    assert (from_server == drawn).all()


@pytest.mark.parametrize("make", [
    lambda a: torch.from_numpy(a).permute(2, 0, 1).float() / 255,  # C x H x W float tensor
    lambda a: a,  # H x W x C uint8 array
    lambda a: Image.fromarray(a),  # PIL
    lambda a: np.moveaxis(a, -1, 0).astype(np.int64),  # C x H x W ints
], ids=["tensor-chw-float", "numpy-hwc-uint8", "pil", "numpy-chw-int"])
def test_log_image_takes_tensors_arrays_and_pil_alike(run: Run, make: Any) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    run.log_image("img", make(array), step=0)
    assert run.dir is not None
    assert (png(run.dir / "images" / "img-0.png") == array).all()


@pytest.mark.parametrize(("image", "boxes", "classes", "threshold", "match"), [
    ("pixels", None, None, None, r"log_image\(\): expected `image` to be a torch tensor, a numpy array or a PIL "
                                 r"image, but got str 'pixels'"),
    (np.zeros((2, 5, 5, 3)), None, None, None, r"expected `image` to be H x W, C x H x W or H x W x C with C = 1, 3 "
                                               r"or 4, but got an array of shape \(2, 5, 5, 3\)"),
    (np.full((4, 4), 2.5), None, None, None, r"expected the float values of `image` to be in \[0, 1\] \(or an image "
                                             r"of integers in \[0, 255\]\), but got values from 2.5 to 2.5"),
    (np.full((4, 4), 300), None, None, None, r"expected the integer values of `image` to be in \[0, 255\], but got "
                                             r"values from 300 to 300"),
    (np.zeros((64, 80)), [{**BOX, "xEnd": 81}], None, None,
     r"expected `boxes\[0\]` to lie inside the 80 x 64 image with xStart <= xEnd and yStart <= yEnd \(0 <= x <= 80, "
     r"0 <= y <= 64\), but got x 10..81, y 20..50"),
    (np.zeros((64, 80)), [{**BOX, "className": "bird"}], ["cat", "dog"], None,
     r"unknown class 'bird' in `boxes\[0\]\['className'\]`; valid classes: cat, dog"),
    (np.zeros((64, 80)), [{**BOX, "className": 2}], ["cat", "dog"], None,
     r"expected `boxes\[0\]\['className'\]` to be a class name or an index from 0 to 1, but got 2"),
    (np.zeros((64, 80)), [{"xStart": 1, "yStart": 1, "xEnd": 2}], None, None,
     r"expected `boxes\[0\]` to have 'yEnd' \(keys xStart, yStart, xEnd, yEnd are required\)"),
    (np.zeros((64, 80)), [{**BOX, "width": 3}], None, None,
     r"unknown key\(s\) 'width' in `boxes\[0\]`; valid keys: xStart, yStart, xEnd, yEnd, className, probability"),
    (np.zeros((64, 80)), [{**BOX, "xStart": "1"}], None, None,
     r"expected `boxes\[0\]\['xStart'\]` to be a finite number of pixels, but got str '1'"),
    (np.zeros((64, 80)), [{**BOX, "probability": 1.5}], None, None,
     r"expected `boxes\[0\]\['probability'\]` to be a number in \[0, 1\], but got 1.5"),
    (np.zeros((64, 80)), BOX, None, None, r"expected `boxes` to be a list of dicts with keys xStart, yStart"),
    (np.zeros((64, 80)), [BOX], None, 2, r"expected `threshold` to be a number in \[0, 1\] or None, but got 2"),
    (np.zeros((64, 80)), [BOX], "cat", None, r"expected `classes` to be a list of class names \(non-empty strings\), "
                                             r"but got str 'cat'"),
], ids=["type", "shape", "float-range", "int-range", "outside", "unknown-class", "class-index", "missing-coord",
        "unknown-key", "coord-type", "probability", "boxes-type", "threshold", "classes"])
def test_log_image_refuses_bad_input_and_writes_nothing(run: Run, image: Any, boxes: Any, classes: Any,
                                                        threshold: Any, match: str) -> None:
    with pytest.raises(ImageInputError, match=match):
        run.log_image("img", image, step=0, boxes=boxes, classes=classes, threshold=threshold)
    assert run.dir is not None and not (run.dir / "images").exists()
    assert all(u.plot != "img" for u in updates(run))


# the command line and the summary ---------------------------------------------------------------------------------
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py")
    parser.add_argument("data")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--layers", type=int, nargs="+", default=[64])
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--tag", action="append", default=None)
    parser.add_argument("--name", default="run")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True)
    return parser


def test_log_command_gives_the_command_that_reruns_the_experiment(run: Run, viz: visdom.Visdom) -> None:
    parser = make_parser()
    args = parser.parse_args(["data dir", "--lr", "0.1", "--layers", "32", "16", "--amp", "--no-shuffle", "-vv",
                              "--tag", "a", "--tag=-b", "--name=x|y", "--no-ema"])
    command = run.log_command(parser, args)
    words = shlex.split(command)
    assert words[:2] == ["python", sys.argv[0]]
    assert parser.parse_args(words[2:]) == args  # the command gives back exactly these options
    assert run.dir is not None
    text = (run.dir / "command.md").read_text()
    assert command in text
    assert "| --lr | 0.1 | 0.01 | yes |" in text and "| --amp | True | False | yes |" in text
    assert "| --name | x\\|y | run | yes |" in text and "| data | data dir | - | yes |" in text
    drawn = [u for u in updates(run) if u.plot == "command"][-1].data["command"]
    assert "<td>--lr</td>" in drawn and "<td>0.01</td>" in drawn
    assert holds(viz, run, "command", drawn)


def test_log_command_with_a_subcommand(run: Run) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="cmd")
    train = sub.add_parser("train")
    train.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(["--seed", "3", "train", "--epochs", "5"])
    assert parser.parse_args(shlex.split(run.log_command(parser, args))[2:]) == args


def test_log_command_refuses_what_is_not_argparse(run: Run) -> None:
    with pytest.raises(RecordCallTypeError, match=r"log_command\(\): expected `parser` to be an "
                                                  r"argparse.ArgumentParser, but got dict \{'lr': 0.1\}"):
        run.log_command({"lr": 0.1}, argparse.Namespace())  # type: ignore[arg-type]
    with pytest.raises(RecordCallTypeError, match=r"log_command\(\): expected `args` to be an argparse.Namespace "
                                                  r"\(what parser.parse_args\(\) returns\), but got list"):
        run.log_command(make_parser(), ["--lr", "1"])  # type: ignore[arg-type]
    assert run.dir is not None and not (run.dir / "command.md").exists()


def git(repo: Path, *words: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *words], capture_output=True, text=True, check=True).stdout


def test_log_summary_in_a_git_repository_with_a_dirty_file(run: Run, tmp_path: Path, viz: visdom.Visdom) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "exp-branch")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "T")
    (repo / "train.py").write_text("lr = 0.1\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "train.py").write_text("lr = 0.2  # <tuned>\n")
    (repo / "notes.txt").write_text("new\n")
    commit = git(repo, "rev-parse", "HEAD").strip()
    facts = run.log_summary({"dataset": "digits", "model": {"depth": 3}}, {"Why": "to test *lr*"}, repo=repo)
    assert facts["git"]["commit"] == commit and facts["git"]["branch"] == "exp-branch" and facts["git"]["dirty"]
    assert facts["python"] == platform.python_version() and facts["torch"] == torch.__version__
    assert facts["flexlogger"] == flexlogger.__version__ and facts["host"] == socket.gethostname()
    assert run.dir is not None
    text = (run.dir / "summary.md").read_text()
    for expected in (commit, "exp-branch", "-lr = 0.1", "+lr = 0.2  # <tuned>", "`notes.txt`", "| dataset | digits |",
                     "| model.depth | 3 |", "## Why\n\nto test *lr*", platform.python_version(), torch.__version__,
                     socket.gethostname()):
        assert expected in text, expected
    drawn = [u for u in updates(run) if u.plot == "run_summary"][-1].data["run_summary"]
    assert "&lt;tuned&gt;" in drawn and "<em>lr</em>" in drawn  # the diff escaped, the section rendered
    assert holds(viz, run, "run_summary", drawn)


def test_log_summary_outside_a_repository(run: Run, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    facts = run.log_summary(repo=tmp_path / "plain")
    assert facts["git"] is None
    assert run.dir is not None and "not a git repository" in (run.dir / "summary.md").read_text()
    with pytest.raises(RecordCallTypeError, match=r"log_summary\(\): expected `sections\['a'\]` to be a str, but "
                                                  r"got int 1"):
        run.log_summary(sections={"a": 1})  # type: ignore[dict-item]
    with pytest.raises(RecordCallTypeError, match=r"log_summary\(\): expected `infos` to be a dict"):
        run.log_summary(infos=[1])  # type: ignore[arg-type]


# printing, progress --------------------------------------------------------------------------------------------------
def log_lines(run: Run) -> list[str]:
    assert run.dir is not None
    return [line.split(" ", 2)[2] for line in (run.dir / "log.txt").read_text().splitlines()]


def test_println_eprintln_and_print_table_print_and_append_to_log_txt(run: Run,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run.println("epoch {} loss {:.3f}", 1, 0.25)
    run.println("braces {kept} without arguments")
    run.eprintln("warning: {what}", what="slow")
    table = run.print_table(["name", "value"], [["lr", 0.1], ["note", None]])
    out, err = capsys.readouterr()
    assert out == f"epoch 1 loss 0.250\nbraces {{kept}} without arguments\n{table}\n"
    assert err == "warning: slow\n"
    assert "-" in table.splitlines()[-1] and "None" not in table
    assert log_lines(run) == ["epoch 1 loss 0.250", "braces {kept} without arguments", "[stderr] warning: slow",
                              *table.splitlines()]
    with pytest.raises(RecordCallError, match=r"print_table\(\): expected `rows\[1\]` to have 2 cells \(one per "
                                              r"column of `header`\), but got 3: \[1, 2, 3\]"):
        run.print_table(["a", "b"], [[1, 2], [1, 2, 3]])
    with pytest.raises(RecordCallTypeError, match=r"print_table\(\): expected `header` to be a list of column names, "
                                                  r"but got str 'ab'"):
        run.print_table("ab", [])
    with pytest.raises(RecordCallError, match=r"println\(\): expected `fmt` 'a \{\} \{\}' to take the arguments "
                                              r"given \(1 positional, keywords none\), but formatting failed: "
                                              r"IndexError"):
        run.println("a {} {}", 1)


def test_progress_writes_start_end_and_duration(run: Run) -> None:
    assert list(run.progress(range(4), desc="epoch 1")) == [0, 1, 2, 3]
    for i in run.progress(iter(range(10)), desc="early", total=10):
        if i == 2:
            break
    lines = log_lines(run)
    assert lines[0] == "progress 'epoch 1': start (4 items)"
    assert re.fullmatch(r"progress 'epoch 1': end after 4 of 4 items in \d+\.\d\d s", lines[1])
    assert lines[2] == "progress 'early': start (10 items)"
    assert re.fullmatch(r"progress 'early': stopped after 2 of 10 items in \d+\.\d\d s", lines[3])
    with pytest.raises(RecordCallTypeError, match=r"progress\(\): expected `iterable` to be an iterable \(a list, a "
                                                  r"range, a DataLoader, ...\), but got int 5"):
        run.progress(5)  # type: ignore[arg-type]
    with pytest.raises(RecordCallTypeError, match=r"progress\(\): expected `total` to be an int >= 0 or None, but "
                                                  r"got int -1"):
        run.progress([], total=-1)


# models and objects ---------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch.compile
def test_save_model_unwraps_data_parallel_and_loads_into_the_bare_model(run: Run) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model(torch.randn(5, 4)).sum().backward()
    path = run.save_model(nn.DataParallel(model), step=7, grads=True)
    assert run.dir is not None and path == run.dir / "models" / "model-7.pt"
    bare = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    bare.load_state_dict(torch.load(path))  # strict: no "module." prefix
    assert all(torch.equal(a, b) for a, b in zip(bare.state_dict().values(), model.state_dict().values()))
    grads = torch.load(run.dir / "models" / "model-7.grads.pt")
    assert set(grads) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert torch.equal(grads["0.weight"], model[0].weight.grad)
    compiled = torch.compile(nn.DataParallel(model))  # lazily compiled: state_dict() compiles nothing
    assert unwrap_model(compiled) is model
    assert set(torch.load(run.save_model(compiled))) == set(model.state_dict())  # type: ignore[arg-type]
    with pytest.raises(RecordCallTypeError, match=r"save_model\(\): expected `model` to be a torch.nn.Module, but "
                                                  r"got OrderedDict"):
        run.save_model(model.state_dict())  # type: ignore[arg-type]


def test_save_obj_writes_whole_objects_and_refuses_unpicklable_ones(run: Run) -> None:
    path = run.save_obj({"mean": torch.tensor([0.5]), "classes": ["a", "b"]}, "norm/stats", step=2)
    assert run.dir is not None and path == run.dir / "objects" / "norm_stats-2.pt"
    loaded = torch.load(path, weights_only=False)
    assert loaded["classes"] == ["a", "b"] and torch.equal(loaded["mean"], torch.tensor([0.5]))
    with pytest.raises(RecordCallError, match=r"save_obj\(\): expected `obj` to be an object torch.save can pickle "
                                              r".*, but got function <function .*<lambda>"):
        run.save_obj(lambda x: x, "fn", step=3)
    with pytest.raises(RecordCallError, match=r"save_obj\(\): expected `obj` to be an object torch.save can pickle "
                                              r".*, but got dict \{'lock'"):
        run.save_obj({"lock": threading.Lock()}, "lock")
    assert sorted(p.name for p in (run.dir / "objects").iterdir()) == ["norm_stats-2.pt"]  # nothing half


def test_flexlogger_hands_every_call_to_its_run(tmp_path: Path, env: str, capsys: pytest.CaptureFixture[str]) -> None:
    with FlexLogger(LOSS, TRAIN, env=env, server=None, log_dir=tmp_path) as stat:
        stat.log_text("t", "x", step=1)
        stat.log_markdown("m", "*x*", step=1)
        stat.log_image("i", np.zeros((2, 2)), step=1)
        stat.log_command(make_parser(), make_parser().parse_args(["d"]))
        stat.log_summary(repo=tmp_path)
        stat.println("p")
        stat.eprintln("e")
        stat.print_table(["a"], [[1]])
        assert list(stat.progress([1])) == [1]
        stat.save_model(nn.Linear(1, 1), step=1)
        stat.save_obj(1, "one")
        run_dir = stat.run_dir
    assert run_dir is not None
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert files == ["command.md", "config.json", "images/i-1.png", "log.txt", "models/model-1.pt",
                     "objects/one.pt", "points.jsonl", "summary.json", "summary.md", "text/m-1.md", "text/t-1.txt"]
    assert {u.plot for u in read_record(run_dir).updates} == {"t", "m", "i", "command", "run_summary"}


def test_replay_redraws_every_record_call_window(tmp_path: Path, visdom_server: VisdomServer, env: str,
                                                 viz: visdom.Visdom) -> None:
    with Run(env=env, port=visdom_server.port, log_dir=tmp_path) as run:
        run.log_hparams({"lr": 0.1, "optim": {"name": "sgd"}})
        run.log_text("sample", "the dog", step=1, expected="the cat")
        run.log_markdown("notes", "**bold**")
        run.log_image("img", np.eye(4, dtype=np.uint8) * 255, boxes=[{"xStart": 0, "yStart": 0, "xEnd": 2,
                                                                      "yEnd": 2}])
        live = {plot: json.loads(viz.get_window_data(run.window_id(plot), env))["content"]
                for plot in ("hparams", "sample", "notes", "img") if run.flush(10) == 0}
    result = flexlogger.replay(run.dir, port=visdom_server.port, env=env + "-replayed")
    assert set(result.windows) >= {"hparams", "sample", "notes", "img"}
    for plot, drawn in live.items():
        again = json.loads(viz.get_window_data(result.windows[plot], env + "-replayed"))["content"]
        assert again == drawn, plot


def test_window_calls_on_a_closed_run_raise_and_write_nothing(tmp_path: Path, env: str) -> None:
    run = Run(env=env, server=None, log_dir=tmp_path)
    run.close()
    with pytest.raises(ConfigError, match=r"log_text\(\): run '.*' \(env '.*'\) is closed; create a new one to log "
                                          r"again"):
        run.log_text("t", "x", step=1)
    with pytest.raises(ConfigError, match=r"log_hparams\(\): run '.*' \(env '.*'\) is closed"):
        run.log_hparams({"lr": 0.1})
    assert run.dir is not None and not (run.dir / "text").exists() and not (run.dir / "hparams.json").exists()
    run.println("after close: printed and appended to log.txt")
    assert (run.dir / "log.txt").read_text().endswith("after close: printed and appended to log.txt\n")


DDP_CHILD = """
import sys, torch, torch.distributed as dist
from torch import nn
import flexlogger
dist.init_process_group("gloo", init_method="file://" + sys.argv[1] + "/pg", rank=0, world_size=1)
try:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with flexlogger.Run(env="ddp", server=None, log_dir=sys.argv[1]) as run:
        path = run.save_model(nn.parallel.DistributedDataParallel(model), step=1)
    bare = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    bare.load_state_dict(torch.load(path))
    assert all(torch.equal(a, b) for a, b in zip(bare.state_dict().values(), model.state_dict().values()))
    print(sorted(torch.load(path)))
finally:
    dist.destroy_process_group()
"""


def test_save_model_unwraps_distributed_data_parallel(tmp_path: Path) -> None:
    """In a process of its own: a (one-rank, gloo) process group is global state."""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", DDP_CHILD, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['0.bias', '0.weight', '2.bias', '2.weight']"
