"""flexlogger import: event files written by the real torch.utils.tensorboard SummaryWriter, a real Lightning
CSVLogger folder and a plain CSV become run records that replay and compare read like our own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import visdom
from readback import record_lines as lines

import flexlogger.wandb as wandb
from flexlogger.sinks.record import read_record
from flexlogger.tools.cli import main
from flexlogger.tools.compare import compare
from flexlogger.tools.importer import RunImportError, import_runs
from flexlogger.tools.server import VisdomServer

tensorboard_writer = pytest.importorskip("torch.utils.tensorboard")


def write_events(folder: Path) -> dict[str, list[float]]:
    """Real event files; returns the values written per tag."""
    values = {"train/loss": [1 / 3, 0.1, 2.5e-8], "val/loss": [0.7, 0.6, 0.55], "Accuracy/test": [0.1, 0.2, 0.3]}
    writer = tensorboard_writer.SummaryWriter(str(folder))
    for step in range(3):
        for tag, series in values.items():
            writer.add_scalar(tag, series[step], step * 10)
        writer.add_histogram("weights", np.arange(100.0) + step, step * 10)
    writer.add_text("notes", "hello there", 5)
    writer.add_hparams({"lr": 0.01, "optimizer": "adam"}, {"hparam/best": 0.3})
    writer.close()
    return values


def test_event_files_import_exactly_and_compare_with_a_flexlogger_run(
        tmp_path: Path, visdom_server: VisdomServer, viz: visdom.Visdom, env: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    written = write_events(tmp_path / "tb" / "baseline")
    assert main(["import", str(tmp_path / "tb"), "--log-dir", str(tmp_path / "records"), "--env", env]) == 0
    assert "baseline (tensorboard)" in capsys.readouterr().out
    imported = tmp_path / "records" / env / "baseline"
    got = lines(imported)
    for tag, window, trace in (("train/loss", "loss", "train"), ("val/loss", "loss", "val"),
                               ("Accuracy/test", "Accuracy", "test")):
        # TensorBoard keeps float32: every value equal to the float32 written, to the last bit
        assert got[(window, trace)] == [(s * 10, float(np.float32(v))) for s, v in enumerate(written[tag])]
    hists = [u for u in read_record(imported).updates if u.plot == "weights"]
    assert [(u.step, sum(u.data["weights"].counts)) for u in hists] == [(0, 100.0), (10, 100.0), (20, 100.0)]
    assert json.loads((imported / "hparams.json").read_text()) == {"lr": 0.01, "optimizer": "adam"}
    assert (imported / "text" / "notes-5.txt").read_text() == "hello there"
    assert got[("best", "hparam")] == [(0, float(np.float32(0.3)))]

    monkeypatch.setenv("FLEXLOGGER_PORT", str(visdom_server.port))
    ours = wandb.init(project="ours", dir=tmp_path / "records", mode="offline")
    for step in range(3):
        wandb.log({"train/loss": 0.5 - step / 10}, step=step * 10)
    ours_dir = ours.run.dir
    wandb.finish()
    assert ours_dir is not None
    compare([imported, ours_dir], plots=["loss"], names=["tensorboard", "flexlogger"], env=env,
            port=visdom_server.port)
    window = json.loads(viz.get_window_data("compare_loss", env))
    drawn = {t["name"]: (t["x"], t["y"]) for t in window["content"]["data"]}
    assert drawn["tensorboard/train"] == ([0, 10, 20], [float(np.float32(v)) for v in written["train/loss"]])
    assert drawn["flexlogger/train"] == ([0, 10, 20], [0.5, 0.4, 0.3])


def test_a_damaged_event_file_is_named_and_the_rest_imported(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_events(tmp_path / "tb" / "good")
    write_events(tmp_path / "tb" / "bad")
    damaged = sorted((tmp_path / "tb" / "bad").glob("events.out.tfevents.*"))[0]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    code = main(["import", str(tmp_path / "tb"), "--log-dir", str(tmp_path / "records")])
    err = capsys.readouterr().err
    assert code == 1 and f"problem: {damaged}: Truncated record" in err and "crc32" in err
    results = {r.source.name: r for r in import_runs([tmp_path / "tb" / "good"], log_dir=tmp_path / "again")}
    bad = import_runs([tmp_path / "tb" / "bad"], log_dir=tmp_path / "again")[0]
    assert 0 < bad.points < results["good"].points and not results["good"].problems
    assert bad.run_dir is not None
    summary = json.loads((bad.run_dir / "summary.json").read_text())
    assert summary["import_problems"] == bad.problems and summary["status"] == "finished"


def test_a_lightning_csvlogger_folder(tmp_path: Path) -> None:
    loggers = pytest.importorskip("lightning.pytorch.loggers")
    logger = loggers.CSVLogger(str(tmp_path / "logs"), name="digits")
    logger.log_hyperparams({"lr": 0.02, "layers": 3})
    rows = [({"train/loss": 0.9, "epoch": 0}, 0), ({"train/loss": 0.7, "epoch": 0}, 1),
            ({"val/loss": 0.8, "epoch": 0}, 1), ({"train/loss": 0.5, "epoch": 1}, 2)]
    for metrics, step in rows:
        logger.log_metrics(metrics, step)
    logger.save()
    logger.finalize("success")
    result = import_runs([tmp_path / "logs"], log_dir=tmp_path / "records")[0]
    assert result.kind == "lightning" and result.run_dir is not None and result.run_dir.name == "digits-version_0"
    got = lines(result.run_dir)
    assert got[("loss", "train")] == [(0, 0.9), (1, 0.7), (2, 0.5)]
    assert got[("loss", "val")] == [(1, 0.8)]
    assert json.loads((result.run_dir / "hparams.json").read_text()) == {"lr": 0.02, "layers": 3}


def test_a_plain_csv_and_its_errors(tmp_path: Path) -> None:
    table = tmp_path / "history.csv"
    table.write_text("global_step,train/loss,lr\n0,1.5,0.1\n1,1.25,\n2,oops,0.05\n")
    result = import_runs([table], log_dir=tmp_path / "records")[0]
    assert result.run_dir is not None
    got: dict[Any, Any] = lines(result.run_dir)
    assert got[("loss", "train")] == [(0, 1.5), (1, 1.25)] and got[("lr", "lr")] == [(0, 0.1), (2, 0.05)]
    assert result.problems == [f"{table}:4: train/loss = 'oops' is not a number; skipped"]
    (tmp_path / "nostep.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunImportError, match="has no step column; expected one of step, global_step, iteration, "
                                             "iter, epoch, but the columns are a, b"):
        import_runs([tmp_path / "nostep.csv"], log_dir=tmp_path / "records")
    with pytest.raises(RunImportError, match="holds no TensorBoard event files"):
        import_runs([tmp_path / "records" / "imported"], log_dir=tmp_path / "x")


def test_the_cli_names_a_path_with_nothing_to_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(tmp_path / "nope"), "--log-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"flexlogger import: error: import: {str(tmp_path / 'nope')!r} does "
                                              "not exist; expected a TensorBoard event folder")


def test_the_bench_runs_with_tiny_arguments(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, str(root / "bench" / "bench_wandb.py"), "--seconds", "0.05",
                           "--import-points", "200"], env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "flexlogger import of 200 points" in done.stdout and "torch SummaryWriter x5" in done.stdout
