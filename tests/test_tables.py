"""stipkit.reports.tables: Tables I and II regenerated from the kit, parameter counts, departures, output."""
from dataclasses import replace

import pandas as pd
import pytest
import torch
from torch import nn

from _helpers import assert_departure_rows
from stipkit.reports import complexity, departures, paper, tables
from stipkit.config import GATED, get_preset
from stipkit.models import STIP, build_model

TABLE1_PRESETS = ("ucfsport", "human36m", "sjtu4k")


# ----------------------------------------------------------------------------- Table I
def test_table1_from_configs_equals_the_paper_except_sjtu4k_resolution():
    ours = tables.table1(TABLE1_PRESETS)
    paper = tables.TABLE1_PAPER
    assert list(ours.columns) == list(paper.columns) == list(tables.TABLE1_COLUMNS)
    assert list(ours.Dataset) == list(paper.Dataset)
    diffs = [(row.Dataset, c) for (_, row), (_, prow) in zip(ours.iterrows(), paper.iterrows())
             for c in tables.TABLE1_COLUMNS if row[c] != prow[c]]
    assert diffs == [("SJTU4K", "Resolution")]
    assert ours.loc[2, "Resolution"] == "2176×3840" and paper.loc[2, "Resolution"] == "2160×3840"


def test_table1_reads_the_presets():
    cfg = get_preset("ucfsport")
    row = tables.table1(["ucfsport"]).iloc[0]
    assert row.Layers == cfg.model.num_layers and row.Patch == cfg.model.patch
    assert row.Test == f"4 → {cfg.eval_length - cfg.input_length}"
    assert row["γ1"] == cfg.train.gamma_gan and row["γ2"] == cfg.train.gamma_lp
    assert row.Discriminator == f"{cfg.model.disc_layers} × DL_D, FC"
    study = tables.table1(["study", "ci-official"])
    assert list(study.Dataset) == ["study", "ci (official)"]
    dl = get_preset("study").model.num_downsample
    assert study.loc[0, "Hidden"] == "32 (D: 64)" and study.loc[0, "Encoder"] == f"{dl} × DL"


def test_compare_table1_labels_the_paper_and_explains_the_difference():
    df = tables.compare_table1()
    assert list(df.Source) == ["stipkit", "paper (Table I)"] * 3
    explained = df[df.Differences != ""]
    assert list(explained.Dataset) == ["SJTU4K"]
    why = explained.Differences.item()
    assert why.startswith("Resolution: 2176×3840 vs 2160×3840")
    assert "2176" in why and "official code" in why and "pad" in why and "unexplained" not in why


# ----------------------------------------------------------------------------- Table II
def test_table2_at_ucfsport_matches_the_paper_but_the_known_differences():
    df = tables.compare_table2("ucfsport")
    ours = df[df.Source == "stipkit"].set_index("Layer")
    paper = tables.TABLE2_PAPER.set_index("Layer")
    diffs = {(layer, c) for layer in paper.index for c in tables.TABLE2_COLUMNS[1:]
             if ours.loc[layer, c] != paper.loc[layer, c]}
    assert diffs == {(tables.HIDDEN, "Padding"), (tables.HIDDEN, "Features"), (tables.FC, "Features"),
                     (tables.FC, "Nonlinearity")}
    assert ours.loc[tables.HIDDEN, "Padding"] == "2" and paper.loc[tables.HIDDEN, "Padding"] == "1"
    assert "unexplained" not in " ".join(df.Differences)
    assert (df[df.Source == "paper (Table II)"].Layer.tolist() == paper.index.tolist())


def test_table2_values_are_read_from_the_modules():
    df = tables.table2("ucfsport").set_index("Layer")
    assert df.loc[tables.DL, ["Kernel", "Stride", "Padding", "Features"]].tolist() == ["3", "2", "1", "64"]
    assert df.loc[tables.DL, "Nonlinearity"] == "LeakyReLU(0.2)" and df.loc[tables.DL, "Normalization"] == "-"
    assert df.loc[tables.DL_D, "Normalization"] == "Group Normalization(4)"
    assert df.loc[tables.UL, "Operation"] == "deconvolution"
    assert df.loc[tables.HIDDEN, ["Kernel", "Features", "Normalization", "Nonlinearity"]].tolist() == \
        ["5", "4 × 64", "Layer Normalization", "-"]
    assert df.loc[tables.FC, ["Features", "Nonlinearity"]].tolist() == ["64 → 1", "-"]  # a logit
    assert df.loc[tables.HIDDEN, "Count"] == 32 and df.loc[tables.DL, "Count"] == 8

    # change the modules of a built model: the table follows them, not a hard-coded copy
    cfg = get_preset("ci")
    predictor, disc = build_model(cfg)
    for enc in predictor.encoders.values():
        enc.down[0] = nn.Conv2d(cfg.model.hidden, cfg.model.hidden, 5, stride=2, padding=2)
    disc.features[2] = nn.Tanh()
    predictor.extra = nn.Conv2d(3, 3, 1)   # a layer Table II's grouping does not know
    df = tables.table2(cfg, model=(predictor, disc)).set_index("Layer")
    assert df.loc[tables.DL, "Kernel"] == "5 ×2, 3 ×2" and df.loc[tables.DL, "Padding"] == "2 ×2, 1 ×2"
    assert df.loc[tables.DL_D, "Nonlinearity"].startswith("Tanh() ×1, LeakyReLU(0.2) ×")
    assert df.loc["Other (extra)", ["Normalization", "Count"]].tolist() == ["(not run)", 1]


def test_table2_traces_the_official_departures():
    df = tables.table2("ucfsport-official").set_index("Layer")
    assert df.loc[tables.UL, "Nonlinearity"] == "LeakyReLU(0.2) ×6, - ×2"   # last UL of 2 decoders
    assert df.loc[tables.DL_D, "Nonlinearity"] == "ReLU()"
    reasons = tables.compare_table2("ucfsport-official").Differences
    assert "unexplained" not in " ".join(reasons)


def test_table2_covers_every_weight_layer():
    for name in ("study", "ci-official"):
        cfg = get_preset(name)
        predictor, disc = tables.build_meta(cfg)
        n = sum(type(m) in (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
                for model in (predictor, disc) for m in model.modules())
        df = tables.table2(cfg)
        assert df.Count.sum() == n
        assert not df.Layer.str.startswith("Other").any()
    nosted = get_preset("study", model=replace(get_preset("study").model, sted=False))
    assert "Merge W_1×1[T^N, S^N] (no STED)" in set(tables.table2(nosted).Layer)


def test_trace_norm_act_sees_functional_and_module_activations():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3)
            self.norm, self.act = nn.GroupNorm(2, 4), nn.ReLU()

        def forward(self, x):
            x = torch.nn.functional.leaky_relu(self.a(x), 0.3)
            return self.c(self.act(self.norm(self.b(x))))

    net = Net()
    uses = complexity.FirstUse()
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: outputs.setdefault(id(mod), o))
             for m in (net.a, net.b, net.c)]
    with uses:
        net(torch.zeros(1, 1, 9, 9))
    for h in hooks:
        h.remove()
    assert [complexity.norm_act(uses, outputs[id(m)]) for m in (net.a, net.b, net.c)] == \
        [("-", "LeakyReLU(0.3)"), ("Group Normalization(2)", "ReLU()"), ("-", "-")]


# ----------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("name", ["ci", "study", "ucfsport", "sjtu4k-official"])
def test_parameter_counts_sum_to_the_model_total(name):
    df = tables.parameter_counts(name)
    predictor, disc = tables.build_meta(name)
    total = sum(p.numel() for m in (predictor, disc) for p in m.parameters())
    assert df.parameters.sum() == total
    assert df[df.model == "STIP"].parameters.sum() == sum(p.numel() for p in predictor.parameters())
    assert df[df.model == "D"].parameters.item() == sum(p.numel() for p in disc.parameters())
    gate = ["gate"] if get_preset(name).model.init in GATED else []  # the study preset's
    assert list(df.key) == ["encoders", "merge_t", "memory", "decoders", "head", *gate, "discriminator"]
    mem = df.set_index("key").loc["memory"]
    assert mem.instances == get_preset(name).model.num_layers
    assert mem["per instance"] * mem.instances == mem.parameters


def test_parameter_counts_match_a_real_model():
    torch.manual_seed(0)
    predictor, disc = build_model(get_preset("ci"))
    df = tables.parameter_counts("ci")
    assert df.parameters.sum() == sum(p.numel() for m in (predictor, disc) for p in m.parameters())
    table = tables.parameter_table(["ci", "study"]).set_index("part")
    assert table.loc["total (STIP + D)", "ci"] == df.parameters.sum()


def test_parts_follow_the_predictor_class_label_and_parts():
    predictor, disc = tables.build_meta("ci")
    parts = list(complexity.model_parts(predictor, disc))
    assert [p[2] for p in parts] == ["STIP"] * (len(parts) - 1) + ["D"]
    assert parts[0][1] == STIP.PARTS["encoders"]
    memory = next(p for p in parts if p[0] == "memory")
    n = get_preset("ci").model.num_layers
    unit = type(predictor.memory[0])
    assert memory[1] == f"Memory units: {n} × {unit.__name__} ({unit.CITE})"

    class Renamed(STIP):
        label = "Mine"
        PARTS = {"encoders": "The encoders", "memory": "Units"}

    predictor.__class__ = Renamed
    labels = {key: (label, model) for key, label, model, _, _ in complexity.model_parts(predictor, disc)}
    assert labels["encoders"] == ("The encoders", "Mine") and labels["head"] == ("head", "Mine")
    assert labels["memory"][0] == f"Units: {n} × STGRU (Eq. 5-7)"  # the units name their equations


def test_flops_per_step_parts_add_up():
    from torch.utils.flop_counter import FlopCounterMode

    cfg = get_preset("ci")
    df = tables.flops_per_step(cfg)
    predictor, _ = tables.build_meta(cfg)
    counter = FlopCounterMode(display=False)
    m = cfg.model
    with counter, torch.no_grad():
        predictor(torch.zeros(1, 2, 3, m.height, m.width, device="meta"), input_length=1)
    assert df[df.model == "STIP"].FLOPs.sum() == counter.get_total_flops() > 0
    assert (df.FLOPs > 0).all()
    assert tables.flops_table(["ci"]).set_index("part").loc["STIP step", "ci"] == \
        round(counter.get_total_flops() / 1e9, 3)


# ----------------------------------------------------------------------------- departures
def test_departures_has_one_row_per_config_field_departure():
    df = tables.departures()
    assert list(df.columns) == ["what", "paper", "official code", "stipkit default", "config field"]
    assert_departure_rows(df, get_preset("study"), get_preset("study-official"))


def test_departures_lists_the_fixed_behaviour_too():
    df = tables.departures().set_index("what")
    for what in ("BGR frames", "LayerNorm over (C, H, W)", "SJTU4K at 2176 lines",
                 "Gates exported for unit index 1 only", "Unused merge / conv_last parameters"):
        assert df.loc[what, "config field"] == "-"
    assert "LayerNorm((128, 8, 8))" in df.loc["LayerNorm over (C, H, W)", "stipkit default"]
    assert "height = 2176" in df.loc["SJTU4K at 2176 lines", "stipkit default"]
    assert "140,352 parameters" in df.loc["Unused merge / conv_last parameters", "official code"]
    assert df.loc["γ1/γ2 swapped", "config field"] == "train.gamma_gan, train.gamma_lp"


# ----------------------------------------------------------------------------- output
def test_save_table_writes_csv_and_markdown(tmp_path):
    df = pd.DataFrame({"name": ["a|b", "c"], "n": [1, 20], "x": [0.001, float("nan")]})
    csv, md = tables.save_table(df, "demo", tmp_path / "out")
    assert csv == tmp_path / "out" / "demo.csv" and md == tmp_path / "out" / "demo.md"
    assert pd.read_csv(csv).shape == (2, 3)
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split(" | ")]  # noqa: E731
    lines = md.read_text(encoding="utf-8").splitlines()
    assert cells(lines[0]) == ["name", "n", "x"]
    rule = lines[1].strip("|").split("|")  # text left-aligned, numbers right-aligned
    assert rule[0].startswith(":-") and rule[1].endswith("-:") and rule[2].endswith("-:")
    assert cells(lines[2]) == ["a\\|b", "1", "0.001"]  # an escaped | does not split the cell
    assert cells(lines[3]) == ["c", "20", ""]            # NaN is empty
    csv, md = tables.save_table(tables.compare_table1(), "table1", tmp_path)
    assert len(md.read_text(encoding="utf-8").splitlines()) == 2 + 6


def test_tables_re_exports_the_split_modules():
    assert tables.TABLE1_PAPER is paper.TABLE1_PAPER and tables.TABLE2_PAPER is paper.TABLE2_PAPER
    assert tables.departures is departures.departures
    for name in ("build_meta", "parameter_counts", "parameter_table", "flops_per_step", "flops_table"):
        assert getattr(tables, name) is getattr(complexity, name)
    assert paper.paper_height("SJTU4K") == 2160
    assert all(hasattr(tables, name) for name in tables.__all__)


def test_figure_inventory(tmp_path):
    assert tables.figure_inventory(tmp_path / "missing").empty
    (tmp_path / "03_loss.png").write_bytes(b"x")
    (tmp_path / "table1.md").write_text("x")
    inv = tables.figure_inventory(tmp_path)
    assert list(inv.file) == ["03_loss.png", "table1.md"]
    assert list(inv["made by"]) == ["03_train_stgru", "02_model_tour"]


def test_several_preset_tables_keep_forward_order_with_a_part_only_one_preset_has():
    """The study preset's motion gate exists in no Table I preset: its row keeps its place after
    the Eq. 4 head (0 elsewhere), and the sums stay the last rows."""
    from stipkit.reports.complexity import flops_table, parameter_table
    params = parameter_table(("ucfsport", "study"))
    assert list(params.part)[-2:] == ["STIP total", "total (STIP + D)"]
    parts = list(params.part)
    assert parts.index("Motion gate (the kit's, not the paper's)") == parts.index("Fusion W_1×1 (Eq. 4)") + 1
    assert params.set_index("part").loc["Motion gate (the kit's, not the paper's)", "ucfsport"] == 0
    assert list(flops_table(("ucfsport", "study")).part)[-1] == "STIP step"
