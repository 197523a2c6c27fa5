"""Adding a memory is one module and one registry line (docs/layout.md, "Adding a memory").

A toy memory is written here as its module would be -- the unit, what it says about itself to
the tables, and its config section -- and registered with one line into ``MEMORIES``; it then
reaches the config, a trained checkpoint, the Fig. 5 explorer, the tables and the Table VII
ablation without any other file knowing it. ``monkeypatch`` restores the registries afterwards.
"""
import math
from dataclasses import dataclass, replace
from typing import ClassVar

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from stipkit.config import ConfigError, ModelConfig, from_dict, get_preset, to_dict  # noqa: E402
from stipkit.config.budget import current_budget  # noqa: E402
from stipkit.config.memories import MemoryConfig, memory_config, memory_names  # noqa: E402
from stipkit.data import MovingDigits  # noqa: E402
from stipkit.experiments import ablation, study  # noqa: E402
from stipkit.models import build_model  # noqa: E402
from stipkit.models.memories import MEMORIES, Memory  # noqa: E402
from stipkit.plots import viz  # noqa: E402
from stipkit.reports import complexity, departures  # noqa: E402
from stipkit.reports.ablation_tables import memory_label  # noqa: E402
from stipkit.reports.paper import PAPER_ABLATIONS  # noqa: E402
from stipkit.training.checkpoint import load_checkpoint, load_predictor  # noqa: E402
from stipkit.training.train import train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def toy_module():
    """What ``stipkit/models/memories/toy.py`` would hold: ``(Toy, ToyConfig)``."""

    @dataclass(frozen=True)
    class ToyConfig(MemoryConfig):  # registers itself under "toy" here, on definition
        name: ClassVar[str] = "toy"
        gain: float = 1.0

        def __post_init__(self):
            if not self.gain > 0:
                raise ConfigError(f"ToyConfig.gain={self.gain!r} is invalid: must be > 0")

    class Toy(Memory):
        """A convolutional GRU-like unit, gate z scaled by ``gain``."""

        MAPS = {"z_t": "update gate z_t (toy)", "h_t": "hidden state h_t (toy)"}
        TEMPORAL = "h"
        CITE = "a toy, Eq. 1"
        LABEL = "ToyGRU"
        TABLE7_ROW = 7.5  # between RPM and STGRU
        CHOICES = (("gain", "not stated", "1: a plain sigmoid", "model.memory.gain"),)
        WHY_DIFFERENT = "not in Table VII (a toy)."
        AUTHORS_PARAMS_M = (0.25, "nowhere: a toy")

        def __init__(self, hidden, filter_size, gain):
            super().__init__()
            self.conv = nn.Conv2d(2 * hidden, 2 * hidden, filter_size, padding=filter_size // 2)
            self.gain = gain

        @classmethod
        def from_config(cls, cfg):
            return cls(cfg.hidden, cfg.filter_size, cfg.memory.gain)

        def init_state(self, x):
            return {"h": torch.zeros_like(x)}

        def forward(self, x, state, ctx):
            z, c = self.conv(torch.cat([x, state["h"]], 1)).chunk(2, 1)
            z = torch.sigmoid(self.gain * z)
            h = z * state["h"] + (1 - z) * torch.tanh(c)
            return h, {"h": h}, {"z_t": z, "h_t": h}

    return Toy, ToyConfig


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(MemoryConfig, "registry", dict(MemoryConfig.registry))  # restored after
    Toy, ToyConfig = toy_module()                                               # "import toy"
    monkeypatch.setitem(MEMORIES, "toy", Toy)                                   # the registry line
    return Toy, ToyConfig


def toy_config(gain=2.0, iterations=2):
    cfg = get_preset("ci")
    return replace(cfg, model=replace(cfg.model, memory=memory_config("toy", gain=gain)),
                   train=replace(cfg.train, iterations=iterations))


def test_the_config_knows_its_section(toy):
    Toy, ToyConfig = toy
    assert "toy" in memory_names() and memory_config("toy", gain=2.0) == ToyConfig(gain=2.0)
    cfg = toy_config()
    assert isinstance(cfg.model, ModelConfig) and cfg.model.memory.name == "toy"
    assert from_dict(to_dict(cfg)) == cfg  # what a checkpoint stores and reads back
    with pytest.raises(ConfigError, match=r"ToyConfig\.gain"):
        memory_config("toy", gain=0)


def test_it_trains_and_its_checkpoint_loads(toy, tmp_path):
    Toy, ToyConfig = toy
    cfg = toy_config()
    m = cfg.model
    data = MovingDigits(num_sequences=4, total_length=cfg.train_length, resolution=(m.height, m.width),
                        seed=0)
    history = train(cfg, data, tmp_path, progress=False)
    assert len(history) == 2 and history["mse"].notna().all()
    predictor, back = load_predictor(tmp_path / "checkpoint.pt")
    assert back == cfg and back.model.memory == ToyConfig(gain=2.0)
    assert all(isinstance(u, Toy) for u in predictor.memory) and len(predictor.memory) == m.num_layers
    assert load_checkpoint(tmp_path / "checkpoint.pt")["memory_revision"] == Toy.REVISION
    frames = torch.rand(1, cfg.eval_length, m.img_channels, m.height, m.width)
    with torch.no_grad():
        assert torch.isfinite(predictor(frames).predictions).all()


def test_the_explorer_shows_its_maps(toy):
    Toy, _ = toy
    cfg = toy_config()
    torch.manual_seed(0)
    predictor, _ = build_model(cfg)
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    features = study.extract_features(predictor, frames, cfg.input_length)
    assert viz.kinds(features)[2:] == list(Toy.MAPS)
    ui = viz.gate_explorer(features, frames, cfg.input_length, titles=predictor.maps())
    assert [label for label, _ in ui.controls["kind"].options][2:] == list(Toy.MAPS.values())
    for kind in Toy.MAPS:
        ranges = viz.feature_ranges(features, kind)
        assert ui.update(kind=kind, **{k: hi for k, (lo, hi) in ranges.items()}).ndim == 2


def test_the_tables_list_it(toy):
    Toy, _ = toy
    choices = departures.memory_choices()
    mine = choices[choices.memory == "toy"]
    assert mine.drop(columns="memory").apply(tuple, axis=1).tolist() == list(Toy.CHOICES)
    order = list(dict.fromkeys(choices.memory))  # Table VII's row order: after RPM's rows
    assert order.index("toy") == order.index("rpm") + 1
    row = complexity.memory_table(["toy"]).iloc[0]
    unit = Toy.from_config(replace(ModelConfig(hidden=128, filter_size=5), memory=memory_config("toy")))
    assert row.params_M == sum(p.numel() for p in unit.parameters()) / 2 ** 20
    assert row.authors_params_M == 0.25 and row.why_different == Toy.WHY_DIFFERENT
    assert math.isnan(row.paper_params_M)  # not a row of the paper's Table VII
    assert complexity.WHY_DIFFERENT["toy"] == Toy.WHY_DIFFERENT


def test_it_is_a_table7_variant(toy):
    Toy, ToyConfig = toy
    a = ablation.ablation("VII")
    assert list(a.variants)[-2:] == ["toy", "stgru"]  # row 7.5: between RPM and STGRU
    assert a.label("toy") == memory_label("toy") == "ToyGRU"
    ci = current_budget("ci")
    cfg = ablation.variant_config("VII", "toy", "digits", 0, ci)
    assert cfg.model.memory == ToyConfig() and (cfg.model.sted, cfg.model.mgir) == (False, False)
    assert ablation.run_revision("VII", "toy", ci) == Toy.REVISION
    assert all("toy" not in c.worse for c in a.claims)  # the paper's claims: not IN_PAPER_TABLE7


def test_without_its_registry_line_it_is_nowhere():
    assert "toy" not in MEMORIES and "toy" not in memory_names()
    assert "toy" not in ablation.ablation("VII").variants
    assert "toy" not in set(departures.memory_choices().memory)


def test_the_kits_memories_describe_themselves():
    labels = [memory_label(n) for n in MEMORIES]
    assert len(set(labels)) == len(labels)  # a subclass (MotionRNN of ST-LSTM) says its own
    paper = set(PAPER_ABLATIONS.loc[PAPER_ABLATIONS.table == "VII", "variant"])
    assert {n for n, cls in MEMORIES.items() if cls.IN_PAPER_TABLE7} == paper
    assert all(MEMORIES[n].TABLE7_ROW is not None for n in paper)
    rows = [id(cls.CHOICES) for cls in MEMORIES.values() if cls.CHOICES]
    assert len(set(rows)) == len(rows)
    for name, cls in MEMORIES.items():
        section = memory_config(name)
        for row in cls.CHOICES:
            assert len(row) == 4 and all(isinstance(x, str) and x for x in row), (name, row)
            if row[3] != "-":  # "model.memory.a, b": fields of its section
                first, *more = (f.strip() for f in row[3].split(","))
                assert first.startswith("model.memory."), (name, row[3])
                for f in [first.removeprefix("model.memory."), *more]:
                    assert hasattr(section, f), (name, f)
