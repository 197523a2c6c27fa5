"""The benchmark protocol (budget "benchmark", stipkit.experiments.ablation): both starts of every
predictor, a learning rate per method chosen on the validation split, runs stopped on validation,
and the test split read only to write the final rows."""
from __future__ import annotations

from dataclasses import replace

import pytest

from stipkit.config.budget import BUDGETS
from stipkit.experiments import ablation

# the benchmark's protocol at the ci preset's size: 2 starts, 2 learning rates, early stopping
TINY = replace(BUDGETS["ci"], name="tinybench", ablation_iterations=6, ablation_eval_every=2,
               ablation_patience=1, ablation_val_windows=4, ablation_starts=("copy_last", "default"),
               ablation_lrs=(1e-3, 3e-3), ablation_seeds=(0, 1))


@pytest.fixture
def tmp_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "RUNS", tmp_path)
    return tmp_path


def test_the_benchmark_budget_states_the_protocol():
    b = BUDGETS["benchmark"]
    assert b.ablation_preset == "ablation64" and len(b.ablation_seeds) >= 5
    # the real clips take the study preset, the smallest measured to learn them (protocol.md)
    assert b.ablation_preset_for("digits") == "ablation64" and b.ablation_preset_for("embedded") == "study"
    assert set(b.ablation_starts) == {"copy_last", "default"} and len(b.ablation_lrs) >= 2
    assert b.ablation_patience > 0 and b.ablation_eval_every > 0
    from stipkit.config import get_preset
    for data in ablation.DATA:
        cfg = get_preset(b.ablation_preset_for(data))
        assert (cfg.model.height, cfg.model.width) == (64, 64)  # LPIPS on more than 1x1 AlexNet maps
    assert ablation.results_path(b).name == "benchmark.csv"


def test_every_variant_of_the_grid_builds_at_its_datasets_preset():
    from stipkit.models import build_model
    from stipkit.reports.ablation_tables import ABLATIONS
    b = BUDGETS["benchmark"]
    for data in ablation.DATA:
        for table, a in ABLATIONS.items():
            for v in a.variants:
                cfg = ablation.variant_config(table, v, data, 0, b, "copy_last", 1e-3)
                assert cfg.name.startswith(b.ablation_preset_for(data)), (table, v, data, cfg.name)
                build_model(cfg)
    # the two datasets' runs live apart, and the digits runs where they always were
    emb = ablation.run_dir("VII", "stgru", "embedded", 0, b, "default", 1e-3).name
    dig = ablation.run_dir("VII", "stgru", "digits", 0, b, "default", 1e-3).name
    assert "-study-" in emb and dig == "benchmark-VII-stgru-default-lr0.001-d2-digits-s0"


def test_the_copy_last_start_trains_with_a_small_adam_epsilon():
    """The zero-initialised last layer of the copy-last start scales the gradients below it under
    Adam's default epsilon; the benchmark's copy-last runs use COPY_LAST_ADAM_EPS (and live
    apart from the runs made before), the PyTorch start and the presets' own keep PyTorch's."""
    import torch
    from stipkit.config import ConfigError, TrainConfig
    from stipkit.training.train import make_optimizers
    from stipkit.models import build_model
    b = BUDGETS["benchmark"]
    cfg = ablation.variant_config("VII", "convgru", "digits", 0, b, "copy_last")
    assert cfg.train.adam_eps == ablation.COPY_LAST_ADAM_EPS < 1e-12
    assert ablation.variant_config("VII", "convgru", "digits", 0, b, "default").train.adam_eps == 1e-8
    assert ablation.variant_config("VI", "both", "digits", 0, BUDGETS["study"]).train.adam_eps == 1e-8
    assert "-copy_last-eps1e-16-" in ablation.run_dir("VII", "convgru", "digits", 0, b, "copy_last").name
    opt = make_optimizers(*build_model(cfg), cfg.train)[0]
    assert opt.param_groups[0]["eps"] == ablation.COPY_LAST_ADAM_EPS
    with pytest.raises(ConfigError, match="TrainConfig.adam_eps"):
        TrainConfig(adam_eps=0.0)
    # the plateau itself, as the benchmark meets it (ablation64, Moving Digits, its warm-up):
    # after a few steps from the residual copy-last start, the memory's weights move under the
    # small epsilon and hardly at all under the default one
    from stipkit.data.build import dataset
    from stipkit.training.train import train_step
    moved = {}
    for eps in (1e-8, ablation.COPY_LAST_ADAM_EPS):
        c = replace(cfg, train=replace(cfg.train, adam_eps=eps))
        torch.manual_seed(0)
        p, d = build_model(c)
        before = {k: v.clone() for k, v in p.memory.state_dict().items()}
        opt_p, opt_d, sched_p, _ = make_optimizers(p, d, c.train)
        data = dataset(c, b, "train", "digits")
        for it in range(8):
            frames = torch.stack([data[4 * it + i] for i in range(4)])[:, :c.train_length]
            train_step(frames, p, d, opt_p, opt_d, c.train, c.input_length)
            sched_p.step()
        moved[eps] = max((v - before[k]).abs().max().item() for k, v in p.memory.state_dict().items())
    assert moved[ablation.COPY_LAST_ADAM_EPS] > 30 * moved[1e-8], moved   # measured: 138x


def test_a_dataset_with_its_own_preset_keeps_its_own_runs_and_rates(tmp_runs, monkeypatch):
    """Runs and learning-rate trials at another preset are other runs: never reused, never
    overwritten (the benchmark's 64x64 pilot on the real clips stays beside the study-preset runs)."""
    import pandas as pd
    from stipkit.config import get_preset
    real = ablation.get_preset

    def presets(name):  # "ci-b": the ci preset with another batch size
        return replace(get_preset("ci"), name="ci-b", train=replace(
            get_preset("ci").train, batch_size=3)) if name == "ci-b" else real(name)
    monkeypatch.setattr(ablation, "get_preset", presets)
    one = replace(TINY, ablation_starts=("copy_last",))
    two = replace(one, ablation_presets=(("digits", "ci-b"),))
    assert ablation.variant_config("VII", "convgru", "digits", 0, two).train.batch_size == 3
    assert ablation.variant_config("VII", "convgru", "embedded", 0, two).train.batch_size != 3
    assert ablation.run_dir("VII", "convgru", "digits", 0, two) != \
        ablation.run_dir("VII", "convgru", "digits", 0, one)
    kw = dict(data=("digits",), seeds=(0,), variants=["convgru"], progress=False)
    first = ablation.run_table("VII", budget=one, command="one", **kw)
    second = ablation.run_table("VII", budget=two, command="two", **kw)
    assert set(first["preset"]) == {"ci"} and set(second["preset"]) == {"ci-b"}
    cached = ablation.load_results(two)
    runs = cached[cached["method"] == "convgru"]
    assert sorted(runs.groupby("preset")["command"].first()) == ["one", "two"]  # both kept
    trials = pd.read_csv(ablation.lr_choices_path(two))
    assert trials.groupby("preset").size().to_dict() == {"ci": 2, "ci-b": 2}


def test_variant_config_sets_the_start_the_rate_and_the_patience():
    cfg = ablation.variant_config("VII", "convgru", "digits", 3, TINY, start="copy_last", lr=3e-3)
    assert cfg.model.init == "copy_last" and cfg.train.lr == 3e-3 and cfg.train.patience == 1
    assert ablation.variant_config("VII", "convgru", "digits", 3, TINY, "default").model.init == "default"
    kept = ablation.variant_config("VI", "both", "digits", 0, BUDGETS["study"])
    assert kept.model.init == "default" and kept.train.patience == 0  # the older protocol
    a = ablation.run_dir("VII", "convgru", "digits", 0, TINY, "copy_last", 1e-3)
    b = ablation.run_dir("VII", "convgru", "digits", 0, TINY, "default", 1e-3)
    assert a != b and "copy_last" in a.name and "lr0.001" in a.name


def test_choices_read_only_the_validation_split(tmp_runs, monkeypatch):
    import stipkit.data.build as build
    reads = []
    real = build.default_dataset

    def spy(cfg, split="test", *args, **kw):
        reads.append(split)
        return real(cfg, split, *args, **kw)
    monkeypatch.setattr(build, "default_dataset", spy)
    lr = ablation.choose_lr("VII", "convgru", "digits", TINY, "copy_last", command="pytest")
    assert lr in TINY.ablation_lrs and "test" not in reads and "val" in reads
    trials = __import__("pandas").read_csv(ablation.lr_choices_path(TINY))
    assert sorted(trials["lr"]) == sorted(TINY.ablation_lrs)
    assert trials.loc[trials["val_score"].idxmax(), "lr"] == lr
    assert (trials["iterations"] <= TINY.ablation_iterations).all()
    # asked again: read from the trials, nothing retrained
    n = len(reads)
    assert ablation.choose_lr("VII", "convgru", "digits", TINY, "copy_last") == lr and len(reads) == n


def test_a_table_runs_both_starts_with_their_chosen_rates(tmp_runs):
    res = ablation.run_table("VII", data=("digits",), seeds=(0, 1), budget=TINY,
                             variants=["convgru"], progress=False, command="pytest")
    runs = res[res["method"] == "convgru"].drop_duplicates(["seed", "start"])
    assert sorted(zip(runs["start"], runs["seed"])) == [("copy_last", 0), ("copy_last", 1),
                                                       ("default", 0), ("default", 1)]
    assert (runs["trained"] <= runs["iterations"]).all() and runs["val_score"].notna().all()
    for start, g in runs.groupby("start"):
        assert g["lr"].nunique() == 1 and g["lr"].iloc[0] in TINY.ablation_lrs
    assert set(res["method"]) >= {"convgru", "copy-last"}


def test_runs_on_older_data_are_never_reused_or_mixed(tmp_runs):
    import pandas as pd
    ci = BUDGETS["ci"]
    res = ablation.run_table("VI", data=("digits",), seeds=(0,), budget=ci, variants=["both"],
                             progress=False, command="new data")
    assert (res["data_version"] == ablation.DATA_VERSION).all()
    assert f"-d{ablation.DATA_VERSION}-" in ablation.run_dir("VI", "both", "digits", 0, ci).name
    old = res.assign(data_version=1, seed=1, command="old data")
    ablation.save_results(old.drop(columns="data_version"), ci)   # cached before the column
    assert set(ablation.load_results(ci)["data_version"]) == {1, ablation.DATA_VERSION}
    with pytest.warns(UserWarning, match="trained and scored on older data"):
        kept = ablation.run_table("VI", data=("digits",), seeds=(0,), budget=ci, variants=["both"],
                                  progress=False)
    assert set(kept["seed"]) == {0} and (kept["command"] == "new data").all()
    assert isinstance(kept, pd.DataFrame)


def test_learning_rate_trials_of_a_changed_cell_are_not_reused(tmp_runs, monkeypatch):
    from stipkit.models.memories import MEMORIES
    ablation.choose_lr("VII", "convgru", "digits", TINY, "copy_last")
    monkeypatch.setattr(MEMORIES["convgru"], "REVISION", MEMORIES["convgru"].REVISION + 1)
    ablation.choose_lr("VII", "convgru", "digits", TINY, "copy_last")
    trials = __import__("pandas").read_csv(ablation.lr_choices_path(TINY))
    assert sorted(trials["revision"].value_counts().tolist()) == [2, 2]   # retried, both kept


# ------------------------------------------------------------------ bad inputs of the protocol
def test_results_of_two_starts_need_start_and_name_them():
    import pandas as pd
    from stipkit.experiments.verdicts import one_start
    res = pd.DataFrame({"start": ["copy_last", "default"], "x": [1, 2]})
    with pytest.raises(ValueError, match=r"several starts \['copy_last', 'default'\]: pass start="):
        one_start(res)
    with pytest.raises(ValueError, match=r"start='preset' has no runs here"):
        one_start(res, "preset")
    assert list(one_start(res, "default")["x"]) == [2]


def test_still_windows_and_their_config_field_refuse_bad_values():
    import torch
    from stipkit.config import ConfigError, TrainConfig
    from stipkit.data.still import StillWindows
    for bad in (1, -2, 2.5):
        with pytest.raises(ConfigError, match="TrainConfig.still_every"):
            TrainConfig(still_every=bad)
    with pytest.raises(ValueError, match="every must be an integer >= 2"):
        StillWindows([torch.zeros(5, 3, 4, 4)], every=1, frame=3)
    still = StillWindows([torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)], every=2, frame=3)
    x = still[1]
    assert torch.equal(x, x[3:4].expand_as(x)) and not torch.equal(still[0], still[0][3:4].expand(5, -1, -1, -1))


def test_train_cli_refuses_patience_without_validation_scores(capsys):
    from stipkit.__main__ import main
    assert main(["train", "--preset", "ci", "--iterations", "2", "--patience", "2",
                 "--no-progress"]) == 2
    assert "--patience 2 needs --eval-every N" in capsys.readouterr().err
    assert main(["train", "--preset", "ucfsport", "--list", "a.txt", "--root", "r",
                 "--eval-every", "5", "--no-progress"]) == 2
    assert "--eval-every on ucfsport needs --val-list FILE" in capsys.readouterr().err


def test_copy_last_runs_made_under_adams_default_epsilon_are_kept_apart(tmp_runs):
    """The benchmark's first copy-last runs (cached before the ``adam_eps`` column, under PyTorch's
    epsilon) stay in the cache but are neither reused nor read as today's runs."""
    one = replace(TINY, ablation_starts=("copy_last",), ablation_lrs=(1e-3,))
    kw = dict(data=("digits",), seeds=(0,), variants=["convgru"], progress=False)
    new = ablation.run_table("VII", budget=one, command="new", **kw)
    assert set(new["adam_eps"]) == {ablation.COPY_LAST_ADAM_EPS}
    old = new.drop(columns="adam_eps").assign(command="before the column")
    ablation.save_results(old, one)                       # read back as PyTorch's epsilon
    cached = ablation.load_results(one)
    assert sorted(cached.groupby("adam_eps")["command"].first()) == ["before the column", "new"]
    again = ablation.run_table("VII", budget=one, command="again", **kw)   # nothing retrained
    assert set(again["command"]) == {"new"} and set(again["adam_eps"]) == {ablation.COPY_LAST_ADAM_EPS}
