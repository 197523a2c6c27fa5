"""stipkit.experiments.benchmark: the committed benchmark results, read without training."""
import numpy as np
import pandas as pd
import pytest

from stipkit.experiments import benchmark
from stipkit.reports.stats import MIN_SEEDS


def fake_results(seeds: dict, table: str = "VII", gap: float = 1.0) -> pd.DataFrame:
    """Rows as `make ablations` writes them: ``seeds[(data, start, variant)] = n`` runs, STGRU
    ``gap`` dB above the memory removed, copy-last below both."""
    rng = np.random.default_rng(0)
    rows = []
    for (data, start, variant), n in seeds.items():
        for s in range(n):
            base = 20.0 + (gap if variant == "stgru" else 0.0)
            for t in (5, 6):
                for method, psnr in ((variant, base + rng.normal(0, 0.05)), ("copy-last", 15.0)):
                    rows.append(dict(table=table, variant=variant, data=data, seed=s, start=start,
                                     method=method, t=t, mse=10 ** (-psnr / 10), psnr=psnr,
                                     ssim=0.5, lpips_x100=10.0))
    return pd.DataFrame(rows)


def test_coverage_counts_seeds_per_cell():
    res = fake_results({("digits", "copy_last", "stgru"): 5, ("digits", "copy_last", "none"): 3})
    cov = benchmark.coverage(res, "VII")
    row = cov[(cov["data"] == "digits") & (cov["start"] == "copy_last")].iloc[0]
    assert row["STGRU"] == 5 and row["No memory"] == 3 and not row["complete"]
    assert len(cov) == 4 and not cov["complete"].any()   # 2 datasets x 2 starts
    assert (cov[cov["data"] == "embedded"].drop(columns=["data", "start", "complete"]) == 0).all().all()


def test_a_claim_is_read_only_when_both_sides_have_the_seeds():
    few = fake_results({("digits", "copy_last", "stgru"): MIN_SEEDS,
                        ("digits", "copy_last", "none"): MIN_SEEDS - 1})
    assert benchmark.verdicts(few, "VII").empty
    assert set(benchmark.summary(few, "VII")["method"]) == {"stgru", "copy-last"}
    enough = fake_results({("digits", "copy_last", "stgru"): MIN_SEEDS,
                           ("digits", "copy_last", "none"): MIN_SEEDS,
                           ("digits", "default", "stgru"): MIN_SEEDS,
                           ("digits", "default", "none"): MIN_SEEDS})
    out = benchmark.verdicts(enough, "VII")
    assert list(out["start"]) == ["copy_last", "default"]
    assert (out["verdict"] == "holds").all() and "+1" in out["evidence"].iloc[0]


def test_a_gap_inside_the_noise_is_not_separable():
    res = fake_results({("digits", "copy_last", "stgru"): 5, ("digits", "copy_last", "none"): 5},
                       gap=0.0)
    assert benchmark.verdicts(res, "VII")["verdict"].tolist() == ["not separable from noise"]


def test_results_reads_only_the_benchmark_preset_of_one_table():
    res = benchmark.results("VII")
    if res.empty:
        pytest.skip("no benchmark run committed")
    assert set(res["table"]) == {"VII"}
    assert (res["preset"] == res["data"].map(benchmark.BUDGET.ablation_preset_for)).all()
    with pytest.raises(ValueError, match="IX"):
        benchmark.results("IX")


def test_the_strip_draws_the_fullest_checkpoints_there_are_and_trains_nothing(tmp_path, monkeypatch):
    from dataclasses import replace

    from stipkit.config import get_preset
    from stipkit.data.build import default_dataset
    from stipkit.experiments import ablation
    from stipkit.plots import viz_ablation
    from stipkit.training.train import train

    monkeypatch.setattr(ablation, "RUNS", tmp_path)
    res = fake_results({("digits", "copy_last", "stgru"): 1,
                        ("digits", "copy_last", "none"): 1}).assign(lr=0.001)
    monkeypatch.setattr(benchmark, "results", lambda table: res)
    assert benchmark.strip("VII") is None                      # no checkpoint in runs/: nothing
    assert viz_ablation.benchmark_strip("VII", "05", benchmark.BUDGET) is None
    assert not any(tmp_path.iterdir())                         # and nothing was trained
    cfg = replace(get_preset("ci"), dataset="digits")
    out = ablation.run_dir("VII", "stgru", "digits", 0, benchmark.BUDGET, "copy_last", 0.001)
    train(cfg, default_dataset(cfg, "train"), out, iterations=1, progress=False)
    assert benchmark.strip("VII", start="default") is None   # none from PyTorch's start
    s = benchmark.strip("VII")                                  # the start with runs
    assert s.pop("start") == "copy_last" and s.pop("seed") == 0
    assert [k for k in s if k not in ("frames", "input_length")] == ["STGRU"]  # the one there is
    assert s["STGRU"].shape[0] == s["frames"].shape[0] - s["input_length"]
    assert 0 <= float(s["STGRU"].min()) and float(s["STGRU"].max()) <= 1
    # two checkpoints from PyTorch's start, seed 1: the strip draws that start and seed
    both = fake_results({("digits", st, k): 2 for st in ("copy_last", "default")
                         for k in ("stgru", "none")}).assign(lr=0.001)
    monkeypatch.setattr(benchmark, "results", lambda table: both)
    for key in ("stgru", "none"):
        out = ablation.run_dir("VII", key, "digits", 1, benchmark.BUDGET, "default", 0.001)
        train(cfg, default_dataset(cfg, "train"), out, iterations=1, progress=False)
    s = benchmark.strip("VII")
    assert (s.pop("start"), s.pop("seed")) == ("default", 1)
    assert sorted(k for k in s if k not in ("frames", "input_length")) == ["No memory", "STGRU"]
    assert benchmark.strip("VII", seed=0).pop("start") == "copy_last"  # a seed asked for is kept


def test_stopping_reports_where_each_variants_kept_weights_come_from():
    res = fake_results({("digits", "copy_last", "stgru"): 3}).assign(best_iteration=[
        it for it in (300, 900, 600) for _ in range(4)], trained=1500)
    out = benchmark.stopping(res, "VII")
    assert out[["label", "seeds", "kept_median", "kept_min", "kept_max", "trained_median",
                "stayed_at_copy_last"]].values.tolist() == [["STGRU", 3, 600.0, 300, 900, 1500.0, 0]]
    empty = benchmark.stopping(res.iloc[:0], "VII")
    assert empty.empty and "stayed_at_copy_last" in empty   # saved with its columns


def test_runs_that_never_left_the_copy_last_start_are_counted_and_named():
    from stipkit.experiments import narrate
    res = fake_results({("digits", "copy_last", "stgru"): 3, ("digits", "copy_last", "none"): 3,
                        ("digits", "default", "none"): 2})
    res = res.assign(best_iteration=600, trained=1500)
    at_start = (res["variant"] == "none") & (res["method"] == "none") & (res["seed"] < 2)
    res.loc[at_start, "psnr"] = 15.0 + 0.01     # two of the three copy-last-start runs stayed
    res.loc[at_start & (res["start"] == "default"), "psnr"] = 15.0   # not counted: another start
    stayed = benchmark.stayed_at_copy_last(res)
    assert stayed.sum() == 4 and not stayed.loc[("digits", "copy_last", "stgru")].any()
    out = benchmark.stopping(res, "VII").set_index(["start", "label"])
    assert out.loc[("copy_last", "No memory"), "stayed_at_copy_last"] == 2
    assert out.loc[("copy_last", "STGRU"), "stayed_at_copy_last"] == 0
    assert np.isnan(out.loc[("default", "No memory"), "stayed_at_copy_last"])
    cov = benchmark.coverage(res, "VII")
    text = narrate.table_conclusion("VII", benchmark.verdicts(res, "VII"), cov,
                                    stopping=benchmark.stopping(res, "VII"))
    assert "never left the copy-last start**: No memory 2 of 3 (digits)" in text
    assert "never left" not in narrate.table_conclusion("VII", benchmark.verdicts(res, "VII"), cov)


def test_the_grid_cost_is_per_dataset_at_its_preset(tmp_path, monkeypatch):
    """`bench_learning.py --grid`: each dataset's runs at its own preset, measured where some ran
    (a run at another preset, like the real clips' 64x64 pilot, or one the grid no longer reads,
    like the copy-last start's under Adam's default epsilon, or another table's run copied, is not
    counted), else estimated."""
    import sys

    from stipkit.experiments import ablation
    sys.path.insert(0, str(ablation.REPO / "benchmarks"))
    from bench_learning import grid_cost, grid_runs
    results, trials = tmp_path / "benchmark.csv", tmp_path / "benchmark-lr.csv"
    eps, old_eps = ablation.adam_eps_for("copy_last"), ablation.TrainConfig.adam_eps
    pd.DataFrame({"table": ["VII"] * 3 + ["VIII"], "variant": ["stgru"] * 3 + ["mse"],  # VIII's
                  "data": ["digits", "embedded", "digits", "digits"],    # MSE: VI's run, copied
                  "start": "copy_last", "seed": 1, "lr": 1e-3, "preset": "ablation64",
                  "adam_eps": [eps, eps, old_eps, eps], "data_version": ablation.DATA_VERSION,
                  "wall_s": [120.0, 60.0, 999.0, 999.0]}).to_csv(results, index=False)
    pd.DataFrame({"table": "VII", "variant": "stgru", "data": "digits", "start": "copy_last",  # before
                  "lr": [1e-3, 2e-3, 1e-3], "adam_eps": [eps, eps, old_eps],             # the column
                  "data_version": [ablation.DATA_VERSION] * 2 + [1],
                  "wall_s": [180.0, 240.0, 999.0]}).to_csv(trials, index=False)
    monkeypatch.setattr(ablation, "results_path", lambda b: results)
    monkeypatch.setattr(ablation, "lr_choices_path", lambda b: trials)
    n = grid_runs().groupby("data").size()
    cost = grid_cost()
    assert list(cost.index) == ["embedded", "digits", "all"]
    assert cost.loc["digits", "preset"] == "ablation64" and cost.loc["embedded", "preset"] == "study"
    assert cost.loc["digits", "runs trained"] == 3 and cost.loc["digits", "CPU-min per run"] == 3.0
    assert cost.loc["digits", "CPU-hours"] == round(3.0 * n["digits"] / 60, 1)
    assert cost.loc["embedded", "runs trained"] == 0 and "not measured" in cost.loc["embedded", "how"]
    est = grid_cost(seconds_per_iteration={"study": 0.5})
    assert est.loc["embedded", "CPU-min per run"] == 0.5 * benchmark.BUDGET.ablation_iterations / 60
    assert est.loc["all", "CPU-hours"] == pytest.approx(
        est.loc["embedded", "CPU-hours"] + est.loc["digits", "CPU-hours"], abs=0.11)


def test_the_grid_cost_refuses_a_malformed_time_per_iteration(capsys):
    import sys

    from stipkit.experiments import ablation
    sys.path.insert(0, str(ablation.REPO / "benchmarks"))
    from bench_learning import main
    for bad in ("study", "study=fast"):
        with pytest.raises(SystemExit):
            main(["--grid", "--seconds-per-iteration", bad])
        assert "PRESET=SECONDS" in capsys.readouterr().err
