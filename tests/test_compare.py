"""The method comparison (STIP Tables III-V, STRPM Tables 1-2) and STRPM Table 3 at kit scale."""
from dataclasses import replace

import pandas as pd
import pytest

from stipkit.config.budget import BUDGETS
from stipkit.experiments import ablation, compare
from stipkit.reports.ablation_tables import ABLATIONS
from stipkit.reports.paper import METHOD_LABELS, NOT_REPRODUCED, PAPER_METHODS

pytestmark = pytest.mark.usefixtures("one_thread")
CI, STUDY = BUDGETS["ci"], BUDGETS["study"]


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "RUNS", tmp_path)
    return tmp_path


def test_every_method_of_the_papers_is_compared_or_said_not_reproduced():
    ours = set(compare.methods()) - {"stip_default_init"}
    papers = set(PAPER_METHODS["method"])
    assert papers == ours | set(NOT_REPRODUCED)
    assert not ours & set(NOT_REPRODUCED)
    assert set(compare.not_reproduced()["method"]) == {METHOD_LABELS[k] for k in NOT_REPRODUCED}


def test_each_method_is_built_as_published():
    cfg = {k: ablation.variant_config("compare", k, "embedded", 1, STUDY) for k in compare.methods()}
    assert {cfg[k].model.memory.name for k in ("convlstm", "predrnn", "predrnnpp", "e3d_lstm",
                                                "crevnet", "motionrnn")} == \
        {"convlstm", "stlstm", "causal_lstm", "e3d_lstm", "reversible", "motionrnn"}
    for k in ("convlstm", "predrnn", "motionrnn"):
        assert (cfg[k].model.sted, cfg[k].model.mgir, cfg[k].train.loss) == (False, False, "mse")
    assert (cfg["strpm"].model.name, cfg["strpm"].train.loss, cfg["strpm"].train.gamma_lp,
            cfg["strpm"].train.gamma_gan) == ("strpm", "mse+gan+lp", 0.01, 0.001)   # Eq. 12
    assert (cfg["beyondmse"].model.name, cfg["beyondmse"].train.loss) == ("beyondmse", "gdl+gan")
    assert cfg["stip"].model.init == "copy_last" and cfg["stip"].train.loss == "mse+gan+lp"
    assert cfg["stip_default_init"].model.init == "default"
    assert len({c.train.iterations for c in cfg.values()}) == 1            # the same budget
    assert {c.train.seed for c in cfg.values()} == {1}


@pytest.mark.parametrize("start", [ablation.PRESET_START, "copy_last", "default"])
@pytest.mark.parametrize("table, key", [(t, k) for t, a in ABLATIONS.items() for k in a.same_as])
def test_a_reused_run_has_exactly_its_sources_config(table, key, start):
    # a variant reuses another table's run only when the configs are the same (but the name)
    src = ABLATIONS[table].same_as[key]
    ours = ablation.variant_config(table, key, "digits", 2, STUDY, start)
    theirs = ablation.variant_config(*src, "digits", 2, STUDY, start)
    same = replace(ours, name="") == replace(theirs, name="")
    assert (ablation.reused_from(table, key, STUDY, start) == src) == same
    mine = ablation.run_dir(table, key, "digits", 2, STUDY, start)
    assert (mine == ablation.run_dir(*src, "digits", 2, STUDY, start)) == same
    # every declared reuse holds under the benchmark's explicit starts
    assert same or start == ablation.PRESET_START


def test_table_viii_reuses_table_vi_only_where_their_starts_agree():
    bench = BUDGETS["benchmark"]
    for start in bench.ablation_starts:
        assert ablation.reused_from("VIII", "mse", bench, start) == ("VI", "both")
    # at the presets' own starts Table VI starts from PyTorch's init, Table VIII as copy-last
    assert ablation.reused_from("VIII", "mse", STUDY) is None


def test_reused_runs_are_read_from_their_tables_cache(tmp_runs):
    first = ablation.run_table("VI", data=("embedded",), seeds=(0,), budget=CI, variants=["both"],
                               progress=False, command="made by VI")
    res = ablation.run_table("compare", data=("embedded",), seeds=(0,), budget=CI,
                             variants=["stip_default_init"], progress=False, command="not used")
    assert set(res["method"]) == {"stip_default_init", "copy-last", "mean-frame", "flow-warp"}
    assert (res["command"] == "made by VI").all()  # copied, not retrained
    a = first[first.method == "both"].sort_values("t")["psnr"].to_numpy()
    b = res[res.method == "stip_default_init"].sort_values("t")["psnr"].to_numpy()
    assert (a == b).all()


def _fake(means: dict, sd: float = 0.1, seeds: int = 3) -> pd.DataFrame:
    rows = []
    for v, m in means.items():
        for s in range(seeds):
            for t in range(5, 11):
                for method, value in ((v, m + sd * (s - 1) - 0.1 * t), ("copy-last", 30.0 - 0.1 * t)):
                    rows.append(dict(table="compare", variant=v, data="embedded", seed=s, method=method,
                                     t=t, mse=0.01, psnr=value, ssim=0.5, lpips_x100=40 - value))
    return pd.DataFrame(rows)


def test_method_table_has_the_papers_layout_and_the_verdict_its_rule():
    means = {k: 20.0 + i for i, k in enumerate(compare.methods())}  # STIP (copy-last start) best
    res = _fake(means)
    t = compare.method_table(res)
    assert list(t.columns) == ["data", "method", "seeds", "t=5 PSNR", "t=5 LPIPS×100", "t=10 PSNR",
                               "t=10 LPIPS×100"]
    assert list(t["method"]) == [*compare.methods().values(), "copy-last"]
    row = t.set_index("method").loc["STRPM"]
    assert row["t=5 PSNR"] == f"{means['strpm'] - 0.5:.2f} ± 0.10" and row["seeds"] == 3
    text = compare.verdict(res)
    assert "STIP beats every method in PSNR: holds" in text
    assert "STRPM beats every method before it in PSNR: holds" in text
    worse = _fake({**means, "stip": 20.0})
    assert "STIP beats every method in PSNR: does not hold" in compare.verdict(worse)
    assert "embedded: the strongest baseline is copy-last" in text  # cached with copy-last only


def test_method_table_lists_every_baseline_last():
    means = {k: 20.0 + i for i, k in enumerate(compare.methods())}
    res = _fake(means)
    base = res[res["method"] == "copy-last"]
    res = pd.concat([res, base.assign(method="flow-warp", psnr=base["psnr"] + 5),
                     base.assign(method="mean-frame", psnr=base["psnr"] - 1)], ignore_index=True)
    t = compare.method_table(res)
    assert list(t["method"]) == [*compare.methods().values(), "copy-last", "mean-frame", "flow-warp"]
    assert t.set_index("method").loc["flow-warp", "t=5 PSNR"] == "34.50 ± 0.00" and (t["seeds"] == 3).all()
    assert "the strongest baseline is flow-warp (34.25 dB" in compare.verdict(res)


def test_paper_tables_are_labelled_as_the_papers():
    t = compare.paper_table("ucfsport")
    assert t.loc["STIP (paper, STIP Table III)", "t=5 PSNR"] == 30.75
    assert all("(paper, STIP Table III)" in i for i in t.index)
    s = compare.paper_table("sjtu4k", "STRPM")
    assert s.loc["STRPM (paper, STRPM Table 2)", "inference 10 samples (s)"] == 39.84
    with pytest.raises(ValueError, match="digits"):
        compare.paper_table("digits")


def test_strpm_table3_variants_and_their_costs():
    a = ABLATIONS["STRPM-3"]
    assert [a.label(k) for k in a.variants][-1] == "RPM + STED"
    assert set(a.variants) == set(__import__("stipkit.reports.paper", fromlist=["x"]).PAPER_STRPM_TABLE3["variant"])
    cfg = compare.table3_config("rpm_theta1_tau5", "strpm-ci")
    assert (cfg.model.name, cfg.model.sted, cfg.model.memory.tau, cfg.model.memory.theta) == ("stip", False, 5, 1)
    assert compare.table3_config("rpm_no_residual", "strpm-ci").model.memory.residual is False
    assert compare.table3_config("rpm_sted", "strpm-ci").model.name == "strpm"
    df = compare.strpm_table3("strpm-ci").set_index("variant")
    assert df.loc["RPM (θ = 1, τ = 1)", "params_M"] < df.loc["RPM (θ = 5, τ = 1)", "params_M"] \
        < df.loc["RPM", "params_M"] < df.loc["RPM + STED", "params_M"]
    assert df.loc["RPM (θ = 5, τ = 1)", "params_M"] == df.loc["RPM (θ = 1, τ = 5)", "params_M"]
    assert (df.paper_params_M > 0).all() and "params_ratio" in df
    with pytest.raises(ValueError, match="STRPM preset"):
        compare.table3_config("rpm", "ci")


def test_strip_and_strpm_fig5_from_trained_runs(tmp_runs, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.text import Text

    from stipkit.plots import viz_ablation
    monkeypatch.setattr(compare, "methods", lambda: {"strpm": "STRPM", "convlstm": "ConvLSTM"})
    s = compare.strip("embedded", budget=CI)
    n, T = s["input_length"], s["frames"].shape[0]
    assert set(s) == {"frames", "input_length", "STRPM", "ConvLSTM"}
    assert s["STRPM"].shape == (T - n, *s["frames"].shape[1:])
    assert 0 <= s["STRPM"].min() and s["STRPM"].max() <= 1
    fig = viz_ablation.plot_strip(s)
    labels = {t.get_text() for t in fig.findobj(Text)}
    assert {"ground truth", "STRPM", "ConvLSTM", f"t={T}"} <= labels
    assert len(fig.axes) == 3 * T
    fig = viz_ablation.strpm_fig5("embedded", budget=CI)  # reuses the trained STRPM run
    titles = " ".join(ax.get_title() for ax in fig.axes)
    for name in ("T_E", "S_E", "STIF", "STRF"):
        assert name in titles
