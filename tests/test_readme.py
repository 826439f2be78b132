"""Every ```python and ```bash block of README.md, run as written against the session's real Visdom server.

The blocks are not edited: the environment points them at the test server (``FLEXLOGGER_SERVER``,
``FLEXLOGGER_PORT``, ``FLEXLOGGER_LOG_DIR``: every entry point takes its defaults from these) and they run in a
temporary working folder. Python blocks run in README order in one namespace; before the first block of a section,
that section's prelude (``PRELUDES`` below) adds what a reader of that section already has (a model, a loader, ...),
so the context each block assumes is written down here. A name no block or prelude gives fails the test
(``NameError``). The framework blocks (Lightning, Hugging Face, ignite) each run in a namespace of their own, with
the framework objects they use. A block that only shows a command's synopsis is fenced ``text`` in the README and
not run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import visdom

from flexlogger.core import run as run_module
from flexlogger.tools.server import VisdomServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)

# `make test` would run this suite inside itself (and ruff and mypy): the one line of the README not run here.
NOT_RUN = {"make test"}

# What a reader of each section already has, by the section's heading: run before the section's first block.
PRELUDES: dict[str, str] = {
    "In a training loop": """
        import torch
        import torch.nn.functional as F
        from sklearn.datasets import load_digits
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset
        digits_x, digits_y = load_digits(return_X_y=True)
        loader = DataLoader(TensorDataset(torch.tensor(digits_x[:256] / 16.0, dtype=torch.float32),
                                          torch.tensor(digits_y[:256])), batch_size=64)
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        epochs = 2
    """,
    "The experiment record: text, images, hparams, the command, models, status": """
        import argparse
        Stat = flexlogger.get_preset_logger('loss+acc', env='readme_record')
        pred, target = 'the cat sat on the mat', 'the cat sat on a mat'
        img = torch.rand(3, 32, 32)
        parser = argparse.ArgumentParser()
        parser.add_argument('--lr', type=float, default=0.1)
        args = parser.parse_args(['--lr', '0.05'])
        epoch, loss = 1, torch.tensor(0.25)
        rows = [['lr', 0.05], ['epochs', None]]
        obj = {'cat': 0, 'dog': 1}
    """,
    "Model statistics: TooledModel and TooledModelLogger": """
        Stat = flexlogger.get_preset_logger('loss', env='readme_model')
        x, y = torch.randn(16, 20), torch.randn(16, 3)
        loader = DataLoader(TensorDataset(torch.randn(64, 20), torch.randn(64, 3)), batch_size=16)
    """,
    "Flight recorder": """
        Stat = flexlogger.get_preset_logger('loss', env='readme_recorder')
        model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3))
    """,
}

# The framework blocks, by their first line: each in a namespace of its own with these objects.
FRAMEWORK_PRELUDES: dict[str, str] = {
    "from flexlogger.integrations.lightning import": """
        from test_lightning import L, DigitsModel, digits_loaders
        model = DigitsModel()
        train_loader, val_loader = digits_loaders()
    """,
    "from flexlogger.integrations.transformers import": """
        from transformers import Trainer, TrainingArguments
        from test_transformers import Tokens, tiny_bert
        model = tiny_bert()
        args = TrainingArguments(output_dir='hf-out', max_steps=6, per_device_train_batch_size=8, logging_steps=2,
                                 report_to='none', save_strategy='no', use_cpu=True, disable_tqdm=True, seed=0)
        train, val = Tokens(64, 0), Tokens(32, 1)
    """,
    "from flexlogger.integrations.ignite import": """
        import flexlogger
        import torch
        import torch.nn.functional as F
        from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
        from ignite.metrics import Accuracy, Loss
        from torch import nn
        from test_ignite import digits
        train_loader, val_loader = digits()
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = create_supervised_trainer(model, optimizer, F.cross_entropy)
        evaluator = create_supervised_evaluator(model, metrics={'acc': Accuracy(), 'loss': Loss(F.cross_entropy)})
    """,
}

# Lightning's Trainer takes its defaults from PL_TRAINER_* variables: two short epochs, no checkpoint or bar.
LIGHTNING_ENV = {"PL_TRAINER_MAX_EPOCHS": "2", "PL_TRAINER_ACCELERATOR": "cpu", "PL_TRAINER_DEVICES": "1",
                 "PL_TRAINER_ENABLE_CHECKPOINTING": "0", "PL_TRAINER_ENABLE_PROGRESS_BAR": "0",
                 "PL_TRAINER_LOG_EVERY_N_STEPS": "2", "PL_TRAINER_NUM_SANITY_VAL_STEPS": "0",
                 "PL_TRAINER_ENABLE_MODEL_SUMMARY": "0"}


class Block:
    """One fenced block of the README: its language, code, line and section."""

    def __init__(self, lang: str, code: str, line: int, section: str) -> None:
        self.lang, self.code, self.line, self.section = lang, code, line, section

    def __repr__(self) -> str:
        return f"README.md:{self.line} ({self.lang}, section {self.section!r})"


def readme_blocks() -> list[Block]:
    """The README's fenced blocks in order, each with the heading of its section."""
    text = README.read_text()
    headings = [(m.start(), m.group(2)) for m in re.finditer(r"^(#{2,4}) (.+)$", text, re.M)]
    blocks = []
    for m in FENCE.finditer(text):
        section = next((h for at, h in reversed(headings) if at < m.start()), "")
        blocks.append(Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2, section))
    return blocks


def windows(viz: visdom.Visdom, env: str) -> dict[str, Any]:
    """Every window of an env on the server, by id."""
    data = viz.get_window_data(env=env)
    # an env with no window: '' from visdom 0.2.4, its page's HTML from visdom 0.3
    return dict(json.loads(data)) if data.lstrip().startswith("{") else {}


def wait_for(what: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.2)
    return what()


@pytest.fixture
def reader_env(tmp_path: Path, visdom_server: VisdomServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A reader's shell: the test server and a log folder in the environment, a tmp working folder, `flexlogger`."""
    work, bin_dir = tmp_path / "work", tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    shim = bin_dir / "flexlogger"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m flexlogger "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("FLEXLOGGER_SERVER", visdom_server.url)
    monkeypatch.setenv("FLEXLOGGER_PORT", str(visdom_server.port))
    monkeypatch.setenv("FLEXLOGGER_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for name, value in LIGHTNING_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(work)
    try:
        yield tmp_path
    finally:
        for run in list(run_module._open_runs):  # the blocks that leave a logger open, as a notebook would
            run.close()


def test_every_python_and_bash_block_runs_as_written(reader_env: Path, viz: visdom.Visdom) -> None:
    blocks = readme_blocks()
    runnable = [b for b in blocks if b.lang in ("python", "bash")]
    other = {b.lang for b in blocks} - {"python", "bash", "text"}
    assert not other, f"README blocks fenced neither python, bash nor text: {other}"
    assert len(runnable) >= 17, [repr(b) for b in runnable]
    ns: dict[str, Any] = {"__name__": "readme"}
    preluded: set[str] = set()
    for block in runnable:
        if block.lang == "bash":
            run_bash(block, reader_env, viz)
            continue
        first = block.code.splitlines()[0]
        framework = next((p for key, p in FRAMEWORK_PRELUDES.items() if first.startswith(key)), None)
        if framework is not None:
            own: dict[str, Any] = {"__name__": "readme"}
            exec(textwrap.dedent(framework), own)
            run_python(block, own)
            check_framework(block, own, viz)
            continue
        if block.section in PRELUDES and block.section not in preluded:
            preluded.add(block.section)
            exec(textwrap.dedent(PRELUDES[block.section]), ns)
        run_python(block, ns)
        check_python(block, ns, reader_env, viz)
    assert preluded == set(PRELUDES), f"preludes of sections the README no longer has: {set(PRELUDES) - preluded}"


def run_python(block: Block, ns: dict[str, Any]) -> None:
    try:
        exec(compile(block.code, f"README.md:{block.line}", "exec"), ns)
    except Exception as exc:
        raise AssertionError(f"{block!r} fails as written: {type(exc).__name__}: {exc}\n{block.code}") from exc


def run_dir_of(logger: Any) -> Path:
    return Path(logger.run.dir)


def check_python(block: Block, ns: dict[str, Any], tmp: Path, viz: visdom.Visdom) -> None:
    """What each logging block should have made: its run folder's files and its windows on the server."""
    code = block.code
    if code.startswith("import flexlogger\n\nStat = flexlogger.FlexLogger("):  # the training loop
        stat = ns["Stat"]
        assert (run_dir_of(stat) / "points.jsonl").is_file()
        ids = windows(viz, "my_env")
        assert {f"{stat.run.uid}_loss", f"{stat.run.uid}_err"} <= set(ids), sorted(ids)
    elif code.startswith("with flexlogger.Run("):
        run = ns["run"]
        assert Path(run.dir).resolve().parent == Path("runs/mnist").resolve()
        assert (Path(run.dir) / "summary.json").is_file()
    elif code.startswith("run = Stat.run"):
        run = ns["run"]
        folder = Path(run.dir)
        for name in ("hparams.json", "text/notes.md", "images/val-3.png", "command.md", "summary.md", "log.txt",
                     "objects/vocab.pt"):
            assert (folder / name).is_file(), f"{name} missing from {sorted(folder.rglob('*'))}"
        assert list((folder / "models").glob("model-*.pt")), sorted(folder.rglob("*"))
        ns["Stat"].flush()
        ids = windows(viz, "readme_record")
        assert {f"{run.uid}_{w}" for w in ("hparams", "sample", "notes", "val", "command", "run_summary")} <= set(ids)
    elif code.startswith("Stat.save_config('experiment.yaml')"):
        assert Path("experiment.yaml").is_file()
        assert ns["Stat"].run.env == "run-7"
    elif code.startswith("model = nn.Sequential("):  # TooledModel and TooledModelLogger
        ns["TMLogger"].flush()
        ns["Stat"].flush()
        uid = ns["Stat"].run.uid

        def drawn() -> bool:
            return any(w.startswith(f"{uid}_") and "Grad_out" in w for w in windows(viz, "readme_model"))
        assert wait_for(drawn), sorted(windows(viz, "readme_model"))


def check_framework(block: Block, ns: dict[str, Any], viz: visdom.Visdom) -> None:
    """The framework's training went to a run whose windows are on the server."""
    if "lightning" in block.code.splitlines()[0]:
        logger = ns["logger"]
        ids = windows(viz, "mnist")
        assert any(w.startswith(f"{logger.version}_") for w in ids), sorted(ids)
        assert (Path(logger.log_dir) / "summary.json").is_file()
    elif "transformers" in block.code.splitlines()[0]:
        ids = windows(viz, "bert")
        assert any(w.endswith("_loss") for w in ids), sorted(ids)
    else:  # ignite: the block attaches the handlers; a short run shows they draw
        stat, trainer, evaluator = ns["Stat"], ns["trainer"], ns["evaluator"]
        trainer.add_event_handler(ns["Events"].EPOCH_COMPLETED, lambda engine: evaluator.run(ns["val_loader"]))
        with stat:
            trainer.run(ns["train_loader"], max_epochs=2)
        ids = windows(viz, "mnist")
        assert {f"{stat.run.uid}_loss", f"{stat.run.uid}_lr"} <= set(ids), sorted(ids)


def run_bash(block: Block, tmp: Path, viz: visdom.Visdom) -> None:
    lines = [line for line in block.code.splitlines() if line.split("#")[0].strip() not in NOT_RUN]
    code = "\n".join(lines) + "\n"
    cwd, env = Path.cwd(), dict(os.environ)
    ingest = None
    if code.startswith("make "):
        # make runs in the checkout, with this interpreter's venv (no new .venv) and the test server's port
        cwd = ROOT
        stamp = tmp / "venv-stamp"
        stamp.touch()
        env["MAKEFLAGS"] = f"VENV={Path(sys.executable).parent.parent} STAMP={stamp} PORT={env['FLEXLOGGER_PORT']}"
    if code.startswith("curl ") and ":8120/" in code:  # the endpoint the block posts to, as `ingest` starts it
        ingest = subprocess.Popen(["flexlogger", "ingest", "--port", "8120"], cwd=cwd, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        assert wait_for(lambda: port_open(8120)), "flexlogger ingest --port 8120 did not start"
    out = tmp / f"bash-{block.line}.log"
    with open(out, "w") as log:
        proc = subprocess.Popen(["bash", "-e", "-c", code], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=300)
            assert rc == 0, f"{block!r} fails as written (exit {rc}):\n{code}\n{out.read_text()[-3000:]}"
            check_bash(code, tmp, viz, out)
        finally:
            for p in (proc, ingest):
                if p is not None:
                    try:
                        os.killpg(p.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=30)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def check_bash(code: str, tmp: Path, viz: visdom.Visdom, out: Path) -> None:
    logs = Path(os.environ["FLEXLOGGER_LOG_DIR"])
    if code.startswith("make demo"):
        assert "already running" in out.read_text(), out.read_text()[-2000:]  # it reused the test server
        assert list(logs.glob("*/*/points.jsonl")), sorted(logs.rglob("*"))
    elif code.startswith("curl "):
        assert wait_for(lambda: bool(list(logs.glob("ingest/model1*/points.jsonl")))), sorted(logs.rglob("*"))
    elif "replay --follow" in code:
        def drawn() -> bool:
            data = windows(viz, "shell").get("exp1_loss")
            return data is not None and "test" in json.dumps(data)
        assert wait_for(drawn), windows(viz, "shell")
