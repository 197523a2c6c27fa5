"""stipkit.experiments.study: the notebooks' glue -- trained_model trains once into the run cache and reuses it,
is reproducible, and the small helpers compute what the notebooks print."""
import shutil
from dataclasses import replace

import pandas as pd
import pytest
import torch

import stipkit.config.budget
import stipkit.training.train
from stipkit.config import get_preset
from stipkit.config.budget import BUDGETS, current_budget
from stipkit.data import build
from stipkit.experiments import study
from stipkit.scoring.metrics import psnr

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_trained_model_trains_into_the_run_dir_then_reuses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(stipkit.config.budget, "RUNS", tmp_path)  # budget.run_dir -> tmp_path/ci-ci
    budget = current_budget("ci")
    predictor, cfg, history = study.trained_model(budget, progress=False)
    ckpt = tmp_path / f"ci-{budget.preset}" / "checkpoint.pt"
    assert ckpt.is_file() and (ckpt.parent / "history.csv").is_file()
    assert cfg.name == budget.preset and not predictor.training
    assert history["iteration"].tolist() == list(range(1, budget.iterations + 1))
    evals = history.dropna(subset=["eval_psnr_t1"])
    assert evals["iteration"].tolist() == list(range(budget.eval_every, budget.iterations + 1,
                                                     budget.eval_every))
    assert evals[["eval_psnr_t1", "eval_psnr_t1_copy_last"]].notna().all().all()

    stamp = ckpt.stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("the cached run was trained again")

    monkeypatch.setattr(stipkit.training.train, "train_step", no_training)
    again, cfg2, history2 = study.trained_model(budget, progress=False)
    assert ckpt.stat().st_mtime_ns == stamp and cfg2 == cfg
    pd.testing.assert_frame_equal(history2, history)
    for k, v in _weights(predictor).items():
        assert torch.equal(again.state_dict()[k], v)


def test_trained_model_is_reproducible(tmp_path):
    budget = replace(current_budget("ci"), iterations=3, eval_every=0)
    a, _, ha = study.trained_model(budget, progress=False, run_dir=tmp_path / "a")
    b, _, hb = study.trained_model(budget, progress=False, run_dir=tmp_path / "b")
    cols = [c for c in ("mse", "d", "gan_p", "lp", "total") if c in ha]
    assert "mse" in cols and "total" in cols
    pd.testing.assert_frame_equal(ha[cols], hb[cols])
    wb = b.state_dict()
    assert all(torch.equal(v, wb[k]) for k, v in a.state_dict().items())


def test_trained_model_refuses_a_run_of_another_configuration(tmp_path):
    budget = replace(current_budget("ci"), iterations=2, eval_every=0)
    study.trained_model(budget, progress=False, run_dir=tmp_path)
    with pytest.raises(RuntimeError, match="delete"):
        study.trained_model(replace(budget, preset="ci-official"), progress=False, run_dir=tmp_path)


def test_trained_model_tells_errors_apart_by_type_not_text(tmp_path, monkeypatch):
    """Only train.RunMismatch becomes the 'delete that folder' error; any other ValueError
    passes unchanged, even one whose text mentions another configuration."""
    def fails(*args, **kwargs):
        raise ValueError("a batch of another configuration")

    monkeypatch.setattr(stipkit.training.train, "train", fails)
    budget = replace(current_budget("ci"), iterations=1, eval_every=0)
    with pytest.raises(ValueError, match="a batch of another configuration") as info:
        study.trained_model(budget, progress=False, run_dir=tmp_path)
    assert type(info.value) is ValueError


def test_quick_eval():
    cfg, budget = get_preset("ci"), BUDGETS["ci"]
    test_set = build.test_split(cfg, budget)
    frames = build.test_frames(cfg, budget)

    torch.manual_seed(0)
    from stipkit.models import build_model
    predictor, _ = build_model(cfg)
    out = study.quick_eval(predictor, cfg, test_set, windows=2)
    il, T = cfg.input_length, cfg.eval_length
    want = float(psnr(frames[:2, il - 1], frames[:2, il]).mean())  # copy-last at t+1
    assert out["psnr_t1_copy_last"] == pytest.approx(want)
    every = torch.stack([psnr(frames[:2, il - 1], frames[:2, t]) for t in range(il, T)])
    assert out["psnr_mean_copy_last"] == pytest.approx(float(every.mean()))
    assert set(out) == {"psnr_t1", "psnr_t1_copy_last", "psnr_mean", "psnr_mean_copy_last"}
    assert out["psnr_t1"] > 0 and out["psnr_mean"] > 0
    assert study.quick_eval(predictor, cfg, test_set) != out  # default: every window


def test_beats_copy_last():
    df = pd.DataFrame([{"method": m, "t": t, "psnr": p, "lpips_x100": l}
                       for m, t, p, l in [("STIP", 5, 30.0, 10.0), ("copy-last", 5, 28.5, 12.0),
                                          ("STIP", 6, 25.0, 20.0), ("copy-last", 6, 26.0, 15.0)]])
    first = study.beats_copy_last(df)
    assert (first["t"], first["beats"], first["margin"]) == (5, True, pytest.approx(1.5))
    assert "beats copy-last" in first["text"] and "+1.50 dB" in first["text"]
    last = study.beats_copy_last(df, t=6)
    assert not last["beats"] and "does not beat" in last["text"]
    lp = study.beats_copy_last(df, metric="lpips_x100")  # lower is better: STIP 10 < 12
    assert lp["beats"] and lp["margin"] == pytest.approx(2.0)
    # scores with copy-last only (cached before the other baselines): it is the strongest
    assert (first["strongest"], first["beats_strongest"]) == ("copy-last", True)
    assert first["text"].count("baseline") == 0
    assert study.beats_baseline(df)["baseline"] == "copy-last"


def test_beats_baseline_names_the_strongest():
    rows = [("STIP", 5, 30.0, 10.0), ("copy-last", 5, 28.5, 12.0), ("mean-frame", 5, 29.0, 14.0),
            ("flow-warp", 5, 31.0, 11.0), ("STIP", 6, 25.0, 20.0), ("copy-last", 6, 24.0, 15.0),
            ("mean-frame", 6, 26.0, 16.0), ("flow-warp", 6, 25.5, 17.0)]
    df = pd.DataFrame([{"method": m, "t": t, "psnr": p, "lpips_x100": l} for m, t, p, l in rows])
    first = study.beats_copy_last(df)
    assert first["beats"] and first["copy_last"] == 28.5
    assert (first["strongest"], first["strongest_value"], first["beats_strongest"]) == \
        ("flow-warp", 31.0, False)
    assert first["strongest_margin"] == pytest.approx(-1.0)
    assert first["text"] == ("At t=5 (the first predicted frame) STIP beats copy-last on PSNR: 30.00 "
                             "dB vs 28.50 dB, a margin of +1.50 dB. The strongest baseline there is "
                             "flow-warp (31.00 dB): STIP does not beat it (margin -1.00 dB).")
    last = study.beats_baseline(df, t=6)  # the strongest at that step
    assert (last["baseline"], last["beats"], last["margin"]) == ("mean-frame", False, -1.0)
    assert last["text"].startswith("At t=6 STIP does not beat mean-frame on PSNR")
    lp = study.beats_baseline(df, metric="lpips_x100")  # lower is better: flow-warp 11 > STIP 10
    assert (lp["baseline"], lp["beats"]) == ("flow-warp", True)
    assert study.beats_baseline(df, baseline="mean-frame")["margin"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"t=7 is not a step of the scores; valid: \[5, 6\]"):
        study.beats_baseline(df, t=7)
    # side by side: each model once per label, every baseline once
    both = study.side_by_side({"live run": df, "pretrained": df.assign(psnr=df["psnr"] + 1)})
    assert list(dict.fromkeys(both["method"])) == ["STIP (live run)", "STIP (pretrained)",
                                                   "copy-last", "mean-frame", "flow-warp"]
    assert both.loc[both["method"] == "flow-warp", "psnr"].tolist() == [31.0, 25.5]


def test_small_tables():
    assert list(study.budget_table().index) == list(BUDGETS)
    table = study.config_table(get_preset("study"), get_preset("ucfsport"))
    assert list(table.columns) == ["study", "ucfsport"] and table.loc["model.hidden", "ucfsport"] == "64"
    paper = study.paper_table()
    assert paper.loc[5, "psnr"] == 30.75 and paper.loc[10, "lpips_x100"] == 39.67


def test_model_for_figures_prefers_a_finished_run_then_the_pretrained_weights(tmp_path, monkeypatch):
    from stipkit.training import zoo
    monkeypatch.setattr(stipkit.config.budget, "RUNS", tmp_path / "runs")
    budget = replace(current_budget("ci"), iterations=2, eval_every=0)
    # no run, no weights: it trains
    _, _, source = study.model_for_figures(budget, progress=False)
    assert "run: 2 iterations" in source and study.finished_run(budget)
    # weights named after the preset, but no finished run of this budget: the weights
    monkeypatch.setattr(zoo, "WEIGHTS", tmp_path / "weights")
    zoo.export(budget.run_dir / "checkpoint.pt", "ci", command="pytest")
    longer = replace(budget, iterations=5)
    assert not study.finished_run(longer)
    model, cfg, source = study.model_for_figures(longer, progress=False)
    assert source.startswith("the pretrained 'ci' weights (2 iterations")
    from stipkit.training.checkpoint import load_checkpoint
    assert load_checkpoint(budget.run_dir / "checkpoint.pt")["iteration"] == 2  # not trained on


def test_current_budget_takes_a_budget_or_its_name():
    b = replace(current_budget("ci"), iterations=3)
    assert current_budget(b) is b and current_budget("ci").name == "ci"
    with pytest.raises(ValueError, match="valid budgets"):
        current_budget("huge")


def test_trained_model_loads_the_shipped_weights_of_the_same_run_instead_of_training(tmp_path, monkeypatch):
    from stipkit.training import zoo
    monkeypatch.setattr(stipkit.config.budget, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(zoo, "WEIGHTS", tmp_path / "weights")
    budget = replace(current_budget("ci"), digits_iterations=3, eval_every=0)
    assert budget.shipped_name("digits") == "ci-digits" and budget.shipped_name("embedded") == "ci"
    # nothing shipped: train_live=False trains, and says why
    model, cfg, history = study.trained_model(budget, progress=False, data="digits", train_live=False)
    assert cfg == budget.run_config("digits") and len(history) == 3
    record = study.ship_run(budget, "digits", command="pytest")
    assert record["name"] == "ci-digits" and record["iterations"] == 3 and record["scores"]
    shutil.rmtree(budget.run_dir_for("digits"))  # a fresh clone: no cached run

    def no_training(*args, **kwargs):
        raise AssertionError("the shipped run was trained again")

    monkeypatch.setattr(stipkit.training.train, "train_step", no_training)
    shipped, cfg2, history2 = study.trained_model(budget, progress=False, data="digits",
                                                   train_live=False)
    assert cfg2 == cfg and history2["iteration"].tolist() == history["iteration"].tolist()
    for k, v in model.state_dict().items():  # float16 on disk: equal to its precision
        torch.testing.assert_close(shipped.state_dict()[k], v, atol=2e-3, rtol=2e-3)
    assert not budget.run_dir_for("digits").exists()
    # weights of another run (other iterations) are not this run's: it trains (and trips the guard)
    longer = replace(budget, digits_iterations=4)
    assert zoo.shipped_run(longer, "digits") is None
    with pytest.raises(AssertionError, match="trained again"):
        study.trained_model(longer, progress=False, data="digits", train_live=False)


def test_one_scoring_pass_gives_the_table_the_paired_test_and_the_per_clip_rows():
    """evaluate_model(per_window="all") scores every test window once: mean_scores of its rows is
    evaluate_model's table, its ``disjoint`` rows are per_window=True's, and per_clip(rows=...)
    is per_clip's own pass (notebook 03 reads all three from one pass)."""
    from stipkit.models import build_model
    from stipkit.scoring.evaluate import mean_scores, per_clip

    budget = replace(current_budget("ci"), eval_windows=150)  # a spread Subset of the stride-1 split
    cfg = get_preset("ci")
    torch.manual_seed(0)
    model = build_model(cfg)[0].eval()
    rows = study.evaluate_model(model, cfg, budget, progress=False, per_window="all")
    pd.testing.assert_frame_equal(mean_scores(rows), study.evaluate_model(model, cfg, budget, progress=False))
    some = rows[rows["disjoint"]]
    alone = study.evaluate_model(model, cfg, budget, progress=False, per_window=True)
    assert 0 < some["sample"].nunique() < rows["sample"].nunique() == 150
    cols = ["method", "t", "psnr", "lpips_x100"]
    pd.testing.assert_frame_equal(some[cols].reset_index(drop=True), alone[cols].reset_index(drop=True))
    test_set = build.test_split(cfg, budget)
    pd.testing.assert_frame_equal(per_clip(model, cfg, test_set, rows=rows), per_clip(model, cfg, test_set))
