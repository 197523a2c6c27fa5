"""The ablation zoo (stipkit.experiments.ablation, complexity.memory_table, viz_ablation, `ablate` CLI)."""
from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from stipkit.config.budget import BUDGETS  # noqa: E402
from stipkit.experiments import ablation  # noqa: E402
from stipkit.reports.ablation_tables import ABLATIONS  # noqa: E402
from stipkit.reports import complexity
from stipkit.plots import viz_ablation  # noqa: E402
from stipkit.__main__ import main  # noqa: E402
from stipkit.config.memories import STGRUConfig  # noqa: E402
from stipkit.models.memories import MEMORIES  # noqa: E402
from stipkit.reports.paper import PAPER_ABLATIONS  # noqa: E402

CI, STUDY = BUDGETS["ci"], BUDGETS["study"]


# ------------------------------------------------------------------ variants
def test_table6_variants_change_only_the_schemes():
    cfgs = {k: ablation.variant_config("VI", k, "embedded", 0, STUDY) for k in ABLATIONS["VI"].variants}
    assert {k: (c.model.sted, c.model.mgir) for k, c in cfgs.items()} == {
        "neither": (False, False), "sted": (True, False), "mgir": (False, True), "both": (True, True)}
    assert len({c.train for c in cfgs.values()}) == 1 and {c.model.init for c in cfgs.values()} == {"default"}
    assert {c.train.iterations for c in cfgs.values()} == {150}


def test_table7_uses_a_plain_encoder_decoder_and_every_memory():
    a = ABLATIONS["VII"]
    # every memory of the kit except MotionRNN, which is not in STIP's Table VII (it is a
    # method of the comparison, ABLATIONS["compare"])
    assert set(a.variants) == set(MEMORIES) - {"motionrnn"}
    cfg = ablation.variant_config("VII", "rpm", "digits", 2, STUDY)
    assert (cfg.model.sted, cfg.model.mgir, cfg.model.memory.name) == (False, False, "rpm")
    assert cfg.train.seed == 2 and cfg.dataset == "digits" and cfg.train.loss == "mse"


def test_table8_switches_the_loss_only():
    cfgs = [ablation.variant_config("VIII", k, "embedded", 0, STUDY) for k in ("mse", "mse+gan", "mse+gan+lp")]
    assert [c.train.loss for c in cfgs] == ["mse", "mse+gan", "mse+gan+lp"]
    assert cfgs[0].model == cfgs[2].model and isinstance(cfgs[0].model.memory, STGRUConfig)


def test_bad_tables_and_variants_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"table='IX'.*\['VI', 'VII', 'VIII', 'compare', 'STRPM-3', 'STRPM-4'\]"):
        ablation.ablation("IX")
    with pytest.raises(ValueError, match="variant='lstm'.*valid are"):
        ablation.variant_config("VII", "lstm", "embedded", 0, CI)


def test_the_papers_numbers_cover_every_paper_variant():
    for table in ("VI", "VII", "VIII"):
        keys = set(PAPER_ABLATIONS.loc[PAPER_ABLATIONS.table == table, "variant"])
        assert keys <= set(ABLATIONS[table].variants)
    # the kit's own rows: two memories the paper lacks, and the control without a memory
    assert set(ABLATIONS["VII"].variants) - set(PAPER_ABLATIONS.variant) == {"convlstm", "stlstm", "none"}
    assert ablation.paper_rows("VI").index[0] == "w/o STED, MGIR (paper)"


# ------------------------------------------------------------------ the rule
def _results(table: str, means: dict, sd: float, seeds=3, data="embedded", base=30.0, metric="psnr"):
    """Synthetic cache rows: each variant's per-seed score = mean + sd * (a fixed pattern)."""
    a = ABLATIONS[table]
    first = 5
    steps = a.steps or 6
    pattern = np.linspace(-1, 1, seeds) if seeds > 1 else np.zeros(1)
    rows = []
    for (v, m), (s, z) in itertools.product(means.items(), enumerate(pattern)):
        for t in range(first, first + steps):
            for method, value in ((v, m + sd * z), ("copy-last", base)):
                rows.append(dict(table=table, variant=v, data=data, seed=s, method=method, t=t,
                                 mse=0.01, psnr=value if metric == "psnr" else 20.0, ssim=0.5,
                                 lpips_x100=value if metric == "lpips_x100" else 10.0))
    return pd.DataFrame(rows)


def _verdict(res, table, claim):
    v = ablation.verdicts(res, table)
    return v.loc[v.claim == claim, "verdict"].item()


def test_verdicts_follow_the_rule():
    clear = _results("VI", {"neither": 20, "sted": 21, "mgir": 22, "both": 23}, sd=0.1)
    assert _verdict(clear, "VI", "STED helps") == "holds"
    assert _verdict(clear, "VI", "STED and MGIR together beat either alone") == "holds"
    reverse = _results("VI", {"neither": 22, "sted": 21, "mgir": 20, "both": 23}, sd=0.1)
    assert _verdict(reverse, "VI", "MGIR helps") == "does not hold"
    assert _verdict(reverse, "VI", "MGIR helps more than STED") == "does not hold"
    noisy = _results("VI", {"neither": 20, "sted": 20.3, "mgir": 22, "both": 23}, sd=1.0)
    assert _verdict(noisy, "VI", "STED helps") == "not separable from noise"
    one_seed = _results("VI", {"neither": 20, "sted": 25, "mgir": 22, "both": 23}, sd=0, seeds=1)
    assert _verdict(one_seed, "VI", "STED helps") == "not separable from noise"


def test_lower_is_better_metrics_flip_the_direction():
    res = _results("VIII", {"mse": 12.0, "mse+gan": 10.0, "mse+gan+lp": 8.0}, sd=0.1, metric="lpips_x100")
    assert _verdict(res, "VIII", "the GAN loss improves perceptual quality (LPIPS)") == "holds"
    assert _verdict(res, "VIII", "the LP-loss improves LPIPS over MSE + GAN") == "holds"


def test_summary_reports_mean_std_seeds_and_copy_last():
    res = _results("VI", {"neither": 20, "sted": 31, "mgir": 22, "both": 23}, sd=1.0, base=30.0)
    s = ablation.summary(res, "VI").set_index("method")
    assert s.loc["sted", "psnr_mean"] == pytest.approx(31) and s.loc["sted", "psnr_std"] == pytest.approx(1.0)
    assert s.loc["sted", "seeds"] == 3 and s.loc["sted", "label"] == "w STED"
    assert s.loc["sted", "beats_copy_last"] and not s.loc["both", "beats_copy_last"]
    assert list(s.index)[-1] == "copy-last"
    text = ablation.copy_last_report(res, "VI")
    assert "w STED beat(s) copy-last" in text and "30.00 dB" in text
    # results cached before mean-frame and flow-warp: copy-last is the only, so the strongest
    assert s["beats_baseline"].equals(s["beats_copy_last"])
    assert text.startswith("embedded: the strongest baseline is copy-last (30.00 dB);")
    assert ablation.baseline_report(res, "VI") == text


def _with_baselines(res: pd.DataFrame, values: dict) -> pd.DataFrame:
    """``res`` plus rows of more baselines, each at a constant PSNR, beside every copy-last row."""
    base = res[res["method"] == "copy-last"]
    return pd.concat([res, *(base.assign(method=m, psnr=v) for m, v in values.items())],
                     ignore_index=True)


def test_summary_lists_every_baseline_and_beats_the_strongest():
    res = _results("VI", {"neither": 20, "sted": 31, "mgir": 22, "both": 32.5}, sd=1.0, base=30.0)
    res = _with_baselines(res, {"mean-frame": 32.0, "flow-warp": 29.0})
    runs = ablation.per_run(res, "VI")  # each baseline once per (data, seed), after the variants
    assert list(runs["method"]) == [m for m in ("neither", "sted", "mgir", "both", "copy-last",
                                                "mean-frame", "flow-warp") for _ in range(3)]
    assert list(runs["seed"]) == [0, 1, 2] * 7
    s = ablation.summary(res, "VI").set_index("method")
    assert list(s.index) == ["neither", "sted", "mgir", "both", "copy-last", "mean-frame", "flow-warp"]
    assert s.loc["flow-warp", "label"] == "flow-warp" and s.loc["mean-frame", "psnr_mean"] == 32.0
    assert s.loc["sted", "beats_copy_last"] and not s.loc["sted", "beats_baseline"]
    assert s.loc["both", "beats_baseline"] and s.loc["both", "beats_copy_last"]
    assert s.loc[["copy-last", "mean-frame", "flow-warp"], ["beats_baseline", "beats_copy_last"]] \
        .isna().all().all()
    text = ablation.baseline_report(res, "VI")
    assert text == ("embedded: the strongest baseline is mean-frame (32.00 dB; copy-last 30.00 dB; "
                    "flow-warp 29.00 dB); w STED, MGIR beat(s) mean-frame, the others do not in "
                    "PSNR (best: w STED, MGIR 32.50 dB vs mean-frame 32.00 dB, 3 seed(s))")
    # a dataset where no variant beats the strongest; and one cached with copy-last only
    other = _with_baselines(_results("VI", {"neither": 20, "sted": 21, "mgir": 22, "both": 23},
                                     sd=0.5, data="digits", base=18.0), {"flow-warp": 24.0})
    old = _results("VI", {"neither": 20, "sted": 21, "mgir": 22, "both": 23}, sd=0.5,
                   data="embedded", base=22.5)
    lines = ablation.baseline_report(pd.concat([other, old]), "VI").splitlines()
    assert lines[0].startswith("digits: the strongest baseline is flow-warp (24.00 dB; copy-last "
                               "18.00 dB); no variant beats flow-warp")
    assert lines[1].startswith("embedded: the strongest baseline is copy-last (22.50 dB); w STED, "
                               "MGIR beat(s) copy-last")


def test_tables_read_their_own_steps():
    res = _results("VII", {"stgru": 25.0, "convgru": 24.0}, sd=0.0, seeds=1)
    res.loc[res.t > 8, "psnr"] = 0.0  # Table VII averages t = 5..8 only
    runs = ablation.per_run(pd.concat([res, res.assign(t=res.t + 4)]), "VII")
    assert runs.loc[runs.method == "stgru", "psnr"].item() == pytest.approx(25.0)


# ------------------------------------------------------------------ runs and the cache
@pytest.fixture
def tmp_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "RUNS", tmp_path)
    return tmp_path


def test_a_loaded_run_keeps_the_time_it_took_to_train(tmp_runs):
    first = ablation.run_variant("VI", "both", "embedded", 0, CI, progress=False)
    history = pd.read_csv(ablation.run_dir("VI", "both", "embedded", 0, CI) / "history.csv")
    trained = float(history["step_s"].sum() + history["data_s"].sum())
    again = ablation.run_variant("VI", "both", "embedded", 0, CI, progress=False)  # loaded
    for res in (first, again):
        assert res["wall_s"].iloc[0] >= round(trained, 1) - 0.05


def test_a_run_trains_scores_and_is_cached(tmp_runs):
    res = ablation.run_table("VI", data=("embedded",), seeds=(0,), budget=CI, variants=["both"],
                             progress=False, command="pytest")
    assert set(res.method) == {"both", "copy-last", "mean-frame", "flow-warp"}
    assert (res.command == "pytest").all()
    assert (res.iterations == 4).all() and (res.wall_s > 0).all() and (res.preset == "ci").all()
    assert ablation.results_path(CI).parent == tmp_runs / "ablations"
    again = ablation.run_table("VI", data=("embedded",), seeds=(0,), budget=CI, variants=["both"],
                               progress=False, command="second")
    assert (again.command == "pytest").all()  # read from the cache, not retrained
    redo = ablation.save_results(res.assign(command="third"), CI)
    assert len(redo) == len(res) and (redo.command == "third").all()  # a run's rows are replaced


def test_runs_of_a_changed_memory_cell_are_retrained_and_left_out(tmp_runs, monkeypatch):
    from stipkit.models.memories import MEMORIES
    res = ablation.run_table("VII", data=("digits",), seeds=(0,), budget=CI, variants=["convgru"],
                             progress=False, command="old cell")
    assert (res.revision == MEMORIES["convgru"].REVISION).all()
    assert ablation.run_dir("VII", "convgru", "digits", 0, CI).name.endswith("convgru-d2-digits-s0")
    monkeypatch.setattr(MEMORIES["convgru"], "REVISION", MEMORIES["convgru"].REVISION + 1)
    stale = ablation.stale_runs(ablation.load_results(CI), CI)
    assert list(stale[["variant", "revision", "current"]].itertuples(index=False, name=None)) == \
        [("convgru", 1, 2)]
    with pytest.warns(UserWarning, match=r"trained by memory cells that have changed.*convgru"):
        assert ablation.run_table("VII", data=("digits",), seeds=(0,), budget=CI, variants=[],
                                  progress=False).empty          # left out, not shown as new
    assert "-r2-" in ablation.run_dir("VII", "convgru", "digits", 0, CI).name  # never resumed
    new = ablation.run_table("VII", data=("digits",), seeds=(0,), budget=CI, variants=["convgru"],
                             progress=False, command="new cell")
    assert (new.command == "new cell").all() and (new.revision == 2).all()   # retrained


# ------------------------------------------------------------------ complexity
def test_memory_table_meets_table7_for_stgru_and_convgru():
    df = complexity.memory_table().set_index("memory")
    assert set(df.index) == set(MEMORIES)
    for name in ("stgru", "convgru"):
        assert abs(df.loc[name, "params_ratio"] - 1) < 0.02, df.loc[name]
        assert abs(df.loc[name, "flops_ratio"] - 1) < 0.02, df.loc[name]
    assert df.loc["convgru", "params_M"] * 2 ** 20 == pytest.approx(2_457_600 + 384)
    assert (df.why_different != "").all()
    assert df.loc["stgru", "norm_params_M"] > 0 and df.loc["convgru", "norm_params_M"] == 0


def test_memory_table_meets_table7_or_the_authors_code():
    """Each Table VII memory within [0.85, 1.2] of Table VII's parameters, or, where Table VII's
    figure cannot be rebuilt from the authors' code, within 2 % of that code, with the reason."""
    df = complexity.memory_table().set_index("memory")
    for name in PAPER_ABLATIONS[PAPER_ABLATIONS.table == "VII"].variant.unique():
        row = df.loc[name]
        near_paper = 0.85 <= row.params_ratio <= 1.2
        near_authors = abs(row.authors_ratio - 1) <= 0.02 and "authors" in row.why_different
        assert near_paper or near_authors, row


def test_model_table_counts_and_times_whole_models():
    df = complexity.model_table("ci", names=["stgru", "convgru"], samples=2, repeats=1)
    assert list(df.memory) == ["stgru", "convgru"] and (df.infer_s > 0).all()
    assert df.params_M.iloc[0] != df.params_M.iloc[1] and (df.flops_G > 0).all()


# ------------------------------------------------------------------ plots and the command line
def test_plots_draw_from_results(tmp_path):
    res = _results("VII", {"stgru": 25.0, "convgru": 24.0, "rpm": 24.5}, sd=0.5)
    mem = pd.DataFrame({"memory": ["stgru", "convgru", "rpm"], "flops_G": [0.8, 0.6, 1.7]})
    for fig in (viz_ablation.plot_bars(res, "VII"), viz_ablation.plot_steps(res, "VII"),
                viz_ablation.plot_psnr_vs_flops(res, mem)):
        assert fig.axes
        matplotlib.pyplot.close(fig)
    every = _with_baselines(res, {"mean-frame": 24.8, "flow-warp": 23.0})  # beside copy-last
    bars, steps = viz_ablation.plot_bars(every, "VII"), viz_ablation.plot_steps(every, "VII")
    for fig in (bars, steps):
        labels = [line.get_label() for line in fig.axes[0].lines]
        assert [x for x in labels if x.split()[0] in ("copy-last", "mean-frame", "flow-warp")] == \
            (["copy-last 30 (strongest: 0)", "mean-frame 24.8", "flow-warp 23"] if fig is bars
             else ["copy-last", "mean-frame", "flow-warp"])
        if fig is bars:  # differences from the strongest baseline: it sits at 0, the others below
            ys = {line.get_label().split()[0]: line.get_ydata()[0] for line in fig.axes[0].lines
                  if line.get_label().split()[0] in ("copy-last", "mean-frame", "flow-warp")}
            assert ys == pytest.approx({"copy-last": 0.0, "mean-frame": -5.2, "flow-warp": -7.0})
        matplotlib.pyplot.close(fig)
    flops = viz_ablation.plot_psnr_vs_flops(every, mem)
    assert len(flops.axes[0].texts) == 3  # the memories only
    matplotlib.pyplot.close(flops)
    for i, plot in enumerate((lambda p: viz_ablation.plot_bars(res, "VII", path=p, dpi=30),
                              lambda p: viz_ablation.plot_steps(res, "VII", path=p, dpi=30),
                              lambda p: viz_ablation.plot_psnr_vs_flops(res, mem, path=p, dpi=30))):
        matplotlib.pyplot.close(plot(tmp_path / f"{i}.png"))  # every plot writes its file given path=
        assert (tmp_path / f"{i}.png").read_bytes()[:4] == b"\x89PNG"


def test_ablate_cli_names_valid_variants(capsys):
    assert main(["ablate", "--table", "VI", "--variants", "lstm", "--budget", "ci"]) == 2
    err = capsys.readouterr().err
    assert "--variants lstm" in err and "neither sted mgir both" in err
