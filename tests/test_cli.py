"""python -m stipkit train | evaluate | predict, run in-process through main([...])."""
import os
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from stipkit.__main__ import main
from stipkit.training.checkpoint import load_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-iteration ci run on Moving Digits, evaluated every 2 iterations."""
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--preset", "ci", "--iterations", "2", "--data", "digits", "--out", str(out),
                 "--eval-every", "2", "--no-progress", "--device", "cpu", "--threads", "1"])
    assert code == 0
    return out


def test_module_help_in_a_subprocess():
    res = subprocess.run([sys.executable, "-m", "stipkit", "--help"], capture_output=True,
                         text=True, env=ENV, timeout=120)
    assert res.returncode == 0, res.stderr
    for word in ("train", "evaluate", "predict", "examples:"):
        assert word in res.stdout


@pytest.mark.parametrize("command, flags", [
    ("train", ["--preset", "--data", "--list", "--root", "--iterations", "--batch-size", "--loss",
               "--out", "--no-resume", "--eval-every", "--ckpt-every", "--seed", "--device",
               "--compile"]),
    ("evaluate", ["--checkpoint", "--data", "--batch-size", "--csv", "--compile"]),
    ("predict", ["--checkpoint", "--data", "--num", "--out"]),
])
def test_command_help(capsys, command, flags):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    for flag in flags:
        assert flag in text, flag


def test_train_end_to_end(run, capsys):
    assert (run / "checkpoint.pt").is_file() and (run / "history.csv").is_file()
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 2
    history = pd.read_csv(run / "history.csv")
    assert list(history["iteration"]) == [1, 2]
    assert {"eval_mse", "eval_psnr", "eval_ssim", "eval_lpips_x100"} <= set(history.columns)
    assert history["eval_psnr"].notna().sum() == 1  # evaluated at iteration 2 only


def test_train_prints_paths_and_table(tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["train", "--preset", "ci", "--iterations", "1", "--data", "digits", "--out",
                 str(out), "--loss", "mse", "--batch-size", "1", "--seed", "3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"checkpoint: {out / 'checkpoint.pt'}" in text and "history.csv" in text
    assert "copy-last" in text and "STIP" in text and "mean" in text
    cfg = load_checkpoint(out / "checkpoint.pt")["config"]
    assert cfg["train"]["loss"] == "mse" and cfg["train"]["batch_size"] == 1
    assert cfg["train"]["seed"] == 3 and cfg["dataset"] == "digits"


def test_evaluate_prints_table_and_writes_csv(run, tmp_path, capsys):
    csv = tmp_path / "sub" / "eval.csv"
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--csv", str(csv),
                 "--batch-size", "50", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "copy-last" in text and "lpips_x100" in text
    df = pd.read_csv(csv)
    assert list(df.columns) == ["method", "t", "mse", "psnr", "ssim", "lpips_x100"]
    assert list(dict.fromkeys(df["method"])) == ["STIP", "copy-last", "mean-frame", "flow-warp"]
    assert sorted(set(df["t"])) == [3, 4] and "flow-warp" in text


def test_predict_writes_strips(run, tmp_path, capsys):
    out = tmp_path / "strips"
    assert main(["predict", "--checkpoint", str(run / "checkpoint.pt"), "--num", "3", "--out",
                 str(out), "--no-progress"]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 3
    for f in files:
        with Image.open(f) as im:  # ci: 4 frames of 32x32, 2-pixel gaps, 2 rows
            assert im.size == (4 * 32 + 3 * 2, 2 * 32 + 2)


@pytest.mark.parametrize("argv, names", [
    (["train", "--preset", "nope"], ["preset", "nope"]),
    (["train", "--preset", "ci", "--batch-size", "0"], ["batch_size"]),
    (["train", "--preset", "ci", "--data", "ucfsport"], ["--list"]),
    (["train", "--preset", "ci", "--data", "ucfsport", "--list", "x.txt"], ["--root"]),
    (["train", "--preset", "ci", "--loss", "l1"], ["--loss"]),
    (["train", "--preset", "ci", "--ckpt-every", "0"], ["--ckpt-every"]),
    (["evaluate", "--checkpoint", "no/such/checkpoint.pt"], ["no/such/checkpoint.pt"]),
    (["predict", "--checkpoint", "no/such/checkpoint.pt"], ["no/such/checkpoint.pt"]),
    (["evaluate"], ["--checkpoint"]),
])
def test_bad_inputs_give_one_line_and_exit_2(capsys, tmp_path, argv, names):
    assert main(argv + ["--out", str(tmp_path)] if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "error:" in err and "Traceback" not in err
    for name in names:
        assert name in err


def test_paper_dataset_with_a_missing_list_file(run, capsys):
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--data", "ucfsport",
                 "--list", "no_list.txt", "--root", "."]) == 2
    err = capsys.readouterr().err
    assert "no_list.txt" in err and len(err.strip().splitlines()) == 1


def test_torchrun_two_processes(tmp_path):
    """Under torchrun the global batch is shared; only rank 0 prints."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "stipkit", "train", "--preset", "ci", "--iterations", "2", "--data", "digits",
           "--batch-size", "1", "--out", str(tmp_path), "--no-progress", "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("checkpoint:") == 1 and res.stdout.count("mean ") == 1, res.stdout
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 2


def test_resuming_another_configuration_is_refused(run, capsys):
    assert main(["train", "--preset", "ci", "--data", "digits", "--iterations", "2", "--out", str(run),
                 "--loss", "mse+gan", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.loss" in err and "--no-resume" in err and len(err.strip().splitlines()) == 1


def test_only_a_run_mismatch_gets_the_resume_hint(tmp_path, capsys, monkeypatch):
    import stipkit.training.train
    from stipkit.training.train import RunMismatch
    argv = ["train", "--preset", "ci", "--data", "digits", "--out", str(tmp_path), "--no-progress"]
    for error, hint in ((RunMismatch("x belongs to another configuration"), True),
                        (ValueError("a value of another configuration"), False)):
        def fails(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr(stipkit.training.train, "train", fails)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert ("--no-resume" in err) == hint and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_damaged_or_mismatched_checkpoint_gives_one_line(run, tmp_path, capsys, command):
    import torch
    ckpt = load_checkpoint(run / "checkpoint.pt")
    for key in ("predictor", "ema"):  # load_predictor reads the weight average when there is one
        if ckpt.get(key) is not None:
            ckpt[key]["renamed.weight"] = ckpt[key].pop(next(iter(ckpt[key])))
    torch.save(ckpt, tmp_path / "old.pt")
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 4)
    for name, says in (("old.pt", "do not fit"), ("noise.pt", "cannot be read safely")):
        assert main([command, "--checkpoint", str(tmp_path / name), "--out" if command == "predict"
                     else "--csv", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert name in err and says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0", "cuda:"])
def test_a_bad_device_is_refused_naming_the_valid_ones(capsys, device):
    assert main(["train", "--preset", "ci", "--device", device]) == 2
    assert f"expected cpu, cuda or cuda:N, got {device!r}" in capsys.readouterr().err
