"""Pretrained weights: export writes float16 weights plus provenance, pretrained() checks them."""
import json
from dataclasses import replace

import pytest
import torch

import stipkit
from stipkit.training import zoo
from stipkit.training.checkpoint import CheckpointError, load_predictor
from stipkit.config import get_preset
from stipkit.data import MovingDigits
from stipkit.training.train import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zoo")
    cfg = get_preset("ci")
    cfg = replace(cfg, train=replace(cfg.train, loss="mse", ema=0.5))
    data = MovingDigits(num_sequences=8, total_length=cfg.train_length, resolution=(32, 32))
    n = torch.get_num_threads()
    try:  # trained on one thread, exported on two: the record keeps the training's
        torch.set_num_threads(1)
        train(cfg, data, tmp / "run", iterations=3, progress=False)
        torch.set_num_threads(2)
        record = zoo.export(tmp / "run" / "checkpoint.pt", "tiny", command="pytest", folder=tmp / "w")
    finally:
        torch.set_num_threads(n)
    return tmp, record


def test_export_then_load_round_trip(exported):
    tmp, record = exported
    assert zoo.available(tmp / "w") == ["tiny"]
    assert record["iterations"] == 3 and record["command"] == "pytest" and record["dtype"] == "float16"
    assert record["weights"].startswith("weight average") and record["data"] == "embedded"
    assert json.loads((tmp / "w" / "tiny.json").read_text())["sha256"] == record["sha256"]
    assert record["train_threads"] == [1]  # the training's threads, not the exporter's
    model, cfg = zoo.pretrained("tiny", tmp / "w")
    trained, cfg2 = load_predictor(tmp / "run" / "checkpoint.pt")  # the EMA weights
    assert cfg == cfg2 and not model.training
    for k, v in trained.state_dict().items():
        got = model.state_dict()[k]
        assert got.dtype == torch.float32
        assert torch.equal(got, v.half().float()), k


def test_pretrained_refuses_a_file_that_does_not_match(exported, tmp_path):
    tmp, _ = exported
    w = tmp_path / "w"
    w.mkdir()
    for f in ("tiny.pt", "tiny.json"):
        (w / f).write_bytes((tmp / "w" / f).read_bytes())
    blob = bytearray((w / "tiny.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (w / "tiny.pt").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="does not match its provenance.*make pretrain"):
        zoo.pretrained("tiny", w)
    (w / "tiny.pt").unlink()
    with pytest.raises(CheckpointError, match="tiny.pt is missing"):
        zoo.pretrained("tiny", w)
    with pytest.raises(CheckpointError, match="no pretrained weights named 'nope'.*available"):
        zoo.pretrained("nope", w)


@pytest.mark.skipif(not (zoo.WEIGHTS / "study.json").is_file(), reason="no shipped study weights")
def test_the_shipped_study_weights_load_and_fit_the_budget():
    model, cfg = stipkit.pretrained("study")
    record = zoo.provenance("study")
    assert cfg.name == "study" and record["preset"] == "study"
    assert record["bytes"] <= 4 * 2 ** 20  # <= 4 MB in the repository
    assert cfg.model == get_preset("study").model  # the shipped model is today's preset
    frames = torch.rand(1, cfg.input_length, 3, cfg.model.height, cfg.model.width)
    out = model(frames, total_length=cfg.eval_length).predictions
    assert out.shape[1] == cfg.eval_length - 1 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["study", "study-digits"])
def test_the_shipped_weights_score_what_their_provenance_records(name):
    """The float16 file, rolled out on its data's test split (4 -> 6, every window), gives the
    PSNR recorded at export from the float32 checkpoint (within 0.05 dB), copy-last included."""
    from stipkit.data.build import default_dataset
    from stipkit.experiments.study import quick_eval

    if not (zoo.WEIGHTS / f"{name}.json").is_file():
        pytest.skip(f"no shipped {name!r} weights")
    model, cfg = stipkit.pretrained(name)
    got = quick_eval(model, cfg, default_dataset(cfg, "test"))
    rec = zoo.provenance(name)["scores"]
    for method, suffix in (("STIP", ""), ("copy-last", "_copy_last")):
        psnr = {r["t"]: r["psnr"] for r in rec if r["method"] == method}
        first = min(psnr)
        assert got["psnr_t1" + suffix] == pytest.approx(psnr[first], abs=0.05), method
        assert got["psnr_mean" + suffix] == pytest.approx(sum(psnr.values()) / len(psnr), abs=0.05)


def test_the_study_preset_is_the_recipe_chosen_on_validation():
    """The shipped recipe is chosen on validation, never on the test clips: the ladder of
    benchmarks/bench_levers.py picks its best row on the validation split (levers-val.csv:
    rollout_7), and leave-one-clip-out (levers-heldout-val.csv, each training clip held out whole
    in turn) decides between it and the later levers by bench_levers.choose_recipe's rule (each
    decision between the incumbent and one challenger, stated before its runs), and its length by
    choose_iterations'."""
    import sys

    import pandas as pd
    results = zoo.WEIGHTS.parents[1] / "benchmarks" / "results"
    sys.path.insert(0, str(results.parent))
    from bench_levers import TIE_DB, choose_iterations, choose_recipe, config_of
    ladder = pd.read_csv(results / "levers-val.csv")
    assert ladder.loc[ladder["best_psnr_mean"].idxmax(), "lever"] == "rollout_7"
    table = pd.read_csv(results / "levers-heldout-val.csv")
    held_out = table[table["lever"].isin(["rollout_7", "gated"])]  # the first choice's candidates
    chosen = choose_recipe(held_out, incumbent="rollout_7")
    flow = table[table["lever"] == "flow_gated"]  # the next one's, once every clip has been held out
    if flow["val"].nunique() == len(set(table["val"])):
        chosen = choose_recipe(pd.concat([held_out[held_out["lever"] == chosen], flow]), incumbent=chosen)
    record = zoo.provenance("study")
    assert record["config"]["model"]["init"] == get_preset("study").model.init
    # the rule itself: a lead under TIE_DB keeps the incumbent, whatever the table says
    close, others = held_out.copy(), held_out["lever"] != "rollout_7"
    close.loc[others, "psnr_mean"] = close.loc[~others, "psnr_mean"].mean() + TIE_DB / 2
    assert choose_recipe(close, incumbent="rollout_7") == "rollout_7"
    with pytest.raises(ValueError, match="held out"):
        choose_recipe(held_out[held_out["val"] != held_out["val"].iloc[0]])
    iterations = choose_iterations(table, lever=chosen) if chosen in ("gated", "flow_gated") else 3000
    assert config_of(chosen, iterations) == get_preset("study")
    assert record["iterations"] == iterations  # the shipped file is that run, not an older one


def test_the_held_out_baselines_are_scored_on_the_held_out_runs_windows():
    """levers-heldout-baselines.csv (bench_levers.py --baselines) scores the baselines on the
    windows the --val-clip runs are scored on: its copy-last is the runs' own copy-last column,
    clip by clip; and it names the strongest baseline the study recipe is read against."""
    import pandas as pd
    results = zoo.WEIGHTS.parents[1] / "benchmarks" / "results"
    runs = pd.read_csv(results / "levers-heldout-val.csv")
    base = pd.read_csv(results / "levers-heldout-baselines.csv").pivot(
        index="val", columns="method", values="psnr_mean")
    assert set(base.index) == set(runs["val"])
    for val, copy_last in runs.groupby("val")["copy_last_mean"]:
        assert copy_last.nunique() == 1 and base.loc[val, "copy-last"] == pytest.approx(copy_last.iloc[0])
    assert set(base.columns) == {"copy-last", "mean-frame", "flow-warp"}


def test_choose_iterations_prefers_the_shorter_run_within_a_tie():
    """The iteration-count rule (docs/study.md): the fewest iterations within TIE_DB of the best."""
    import sys

    import pandas as pd
    sys.path.insert(0, str(zoo.WEIGHTS.parents[1] / "benchmarks"))
    from bench_levers import TIE_DB, choose_iterations, held_out_label
    from stipkit.data.video import TRAIN_CLIPS

    def table(short: float, long: float) -> pd.DataFrame:
        return pd.DataFrame([{"lever": "gated", "val": held_out_label(c), "iterations": n,
                              "psnr_mean": 25.0 + d}
                             for c in TRAIN_CLIPS for n, d in ((1000, short), (3000, long))])
    assert choose_iterations(table(0.0, TIE_DB * 0.9)) == 1000
    assert choose_iterations(table(0.0, TIE_DB * 1.1)) == 3000
    assert choose_iterations(table(1.0, 0.0)) == 1000
    with pytest.raises(ValueError, match="held out"):
        choose_iterations(table(0.0, 0.0).iloc[1:])


@pytest.mark.skipif(not (zoo.WEIGHTS / "study-digits.json").is_file(), reason="not shipped")
def test_the_shipped_digits_weights_are_notebook_03s_digits_run_with_its_history():
    """study-digits is the study budget's Moving Digits run (same config: preset, data,
    iterations, seed), so notebook 03 may load it instead of training; its history is the run's."""
    from stipkit.config.budget import current_budget

    budget = current_budget("study")
    found = zoo.shipped_run(budget, "digits")
    assert found is not None, "study-digits is not the study budget's digits run any more"
    _, cfg, history, record = found
    assert record["bytes"] <= 4 * 2 ** 20 and record["data"] == "digits"
    assert history["iteration"].tolist() == list(range(1, budget.iterations_for("digits") + 1))
    assert history["eval_psnr_mean"].notna().sum() >= 2


def test_the_still_drift_record_is_the_shipped_weights():
    """benchmarks/results/still-drift.csv (docs/study.md's still scene) is what
    benchmarks/bench_still.py reads from the shipped study weights today: an exact still scene is
    copied exactly (the motion gate), a noisy one drifts; the weights shipped before them added
    nearly the same change at every step, a blur toward the mean."""
    import sys

    import pandas as pd
    bench = zoo.WEIGHTS.parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    from bench_levers import still_frames
    from stipkit.scoring.evaluate import still_drift
    table = pd.read_csv(bench / "results" / "still-drift.csv")
    shipped = table[table["model"] == "study (shipped)"]
    assert sorted(shipped["noise"].unique()) == [0.0, 0.004, 0.01]
    model, cfg = stipkit.pretrained("study")
    for noise, record in shipped.groupby("noise"):
        got = still_drift(model, still_frames(cfg), cfg.input_length, cfg.eval_length, noise)
        for col in ("psnr", "step_rms", "same_as_first", "toward_mean"):
            assert got[col].tolist() == pytest.approx(record[col].tolist(), abs=2e-3, nan_ok=True), (noise, col)
    assert (shipped[shipped["noise"] == 0]["psnr"] == float("inf")).all()
    before = table[table["model"].str.startswith("rollout_7") & (table["noise"] == 0)]
    assert len(before) == 6 and (before["same_as_first"] > 0.8).all() and (before["toward_mean"] < -0.3).all()


def test_bench_levers_appends_rows_to_a_table_it_creates_if_missing(tmp_path):
    """--append writes a run's row even when the CSV does not exist yet (it once failed there
    after the run, losing its row), and keeps the rows already in it."""
    import sys

    import pandas as pd
    sys.path.insert(0, str(zoo.WEIGHTS.parents[1] / "benchmarks"))
    from bench_levers import append_rows
    path = tmp_path / "rows.csv"
    append_rows(str(path), pd.DataFrame([{"lever": "a", "psnr_mean": 1.0}]))
    table = append_rows(str(path), pd.DataFrame([{"lever": "b", "psnr_mean": 2.0}]))
    assert table["lever"].tolist() == ["a", "b"]
    pd.testing.assert_frame_equal(pd.read_csv(path), table)


def test_bench_levers_names_runs_of_other_data_or_seeds_apart():
    """A run on extra clips or with another seed gets its own row name, so that leave-one-clip-out
    never reads it as the row's own run."""
    import sys

    sys.path.insert(0, str(zoo.WEIGHTS.parents[1] / "benchmarks"))
    from bench_levers import row_name
    assert row_name("flow_gated") == "flow_gated"
    assert row_name("flow_gated", {"city_1": "a", "city_2": "b"}) == "flow_gated+city_1+city_2"
    assert row_name("flow_gated", None, 1) == "flow_gated@seed1"
