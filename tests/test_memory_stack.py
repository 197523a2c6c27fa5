"""The memory-stack interface (stipkit.models.memories.base) with small stand-in units: it can
express the wirings of Table VII's memories -- a state carried across layers (ST-LSTM's zigzag
M), an extra unit between layers (PredRNN++'s gradient highway), a window of tau past states
(E3D-LSTM, RPM) and theta lower-layer states (RPM) -- and a new memory plugs into STIP through
one config section and one registry entry."""
from dataclasses import dataclass, replace
from typing import ClassVar

import pytest
import torch
from torch import nn

from stipkit.config import ConfigError, from_dict, get_preset, to_dict
from stipkit.config.memories import MemoryConfig, memory_config, memory_names
from stipkit.models import MEMORIES, build_model
from stipkit.models.memories import Memory, MemoryStack, build_stack


class Add(Memory):
    """x_out = x + T + 1; T_t = x_out. Records what it was given."""

    MAPS = {"gate": "a stand-in map"}
    TEMPORAL = "T"

    def __init__(self, name="unit", window=0, below=0):
        super().__init__()
        self.name, self.window, self.below, self.seen = name, window, below, []

    def init_state(self, x):
        return {"T": torch.zeros_like(x)}

    def forward(self, x, state, ctx):
        self.seen.append({"past": [p["T"].clone() for p in ctx.past],
                          "below": [b.clone() for b in ctx.below]})
        out = x + state["T"] + 1
        return out, {"T": out}, {"gate": torch.sigmoid(out)}


class Zigzag(Add):
    """ST-LSTM-like: reads the shared M, writes M + its layer number (its trace)."""

    def __init__(self, k):
        super().__init__(f"zigzag{k}")
        self.k = k

    def init_shared(self, x):
        return {"M": torch.zeros_like(x)}

    def forward(self, x, state, ctx):
        self.seen.append(ctx.shared["M"].clone())
        ctx.shared["M"] = ctx.shared["M"] * 10 + self.k
        return x, state, {}


class Highway(Memory):
    """A gradient-highway-like unit between layers: its own state Z, no temporal state."""

    def init_state(self, x):
        return {"Z": torch.zeros_like(x)}

    def forward(self, x, state, ctx):
        z = 0.5 * x + 0.5 * state["Z"]
        return z, {"Z": z}, {}


def run(stack, steps=3, x=None):
    x = torch.ones(1, 1, 2, 2) if x is None else x
    state, outs = stack.init_state(x), []
    for _ in range(steps):
        out, maps = stack(x, state)
        outs.append(out)
    return outs, state, maps


def test_plain_wiring_carries_each_units_state_over_time():
    outs, state, maps = run(MemoryStack([Add(), Add()]), steps=2)
    # t=1: unit0 1+0+1=2, unit1 2+0+1=3; t=2: unit0 1+2+1=4, unit1 4+3+1=8
    assert outs[0].flatten()[0] == 3 and outs[1].flatten()[0] == 8
    assert [s["T"].flatten()[0].item() for s in state.units] == [4, 8]
    assert [list(m) for m in maps] == [["gate"], ["gate"]]


def test_shared_state_zigzags_up_the_stack_and_back_to_the_bottom():
    units = [Zigzag(1), Zigzag(2), Zigzag(3)]
    _, state, _ = run(MemoryStack(units), steps=2)
    read = lambda u: [int(m.flatten()[0]) for m in u.seen]  # noqa: E731
    # t=1: M goes 0 -> 1 -> 12 -> 123 up the stack; t=2 the bottom unit reads the top's 123.
    assert read(units[0]) == [0, 123] and read(units[1]) == [1, 1231] and read(units[2]) == [12, 12312]
    assert int(state.shared["M"].flatten()[0]) == 123123


def test_an_extra_unit_between_layers_keeps_its_own_state():
    stack = MemoryStack([Add(), Highway(), Add()])
    outs, state, maps = run(stack, steps=2)
    # t=1: 2 -> highway 1 -> 2; t=2: unit0 4 -> highway 0.5*4+0.5*1 = 2.5 -> 2.5+2+1 = 5.5
    assert outs[1].flatten()[0] == 5.5 and state.units[1]["Z"].flatten()[0] == 2.5
    assert maps[1] == {}
    with pytest.raises(ValueError, match="temporal state"):
        MemoryStack([Add(), Highway()])  # the top unit must feed the temporal decoder


def test_a_window_of_tau_past_states():
    unit = Add(window=3)
    run(MemoryStack([unit]), steps=5)
    past = [[int(p.flatten()[0]) for p in seen["past"]] for seen in unit.seen]
    # T over time: 0 (init), 2, 4, 6, 8; the window holds the 3 latest, oldest first
    assert past == [[0], [0, 2], [0, 2, 4], [2, 4, 6], [4, 6, 8]]


def test_theta_lower_layer_states():
    top = Add(below=2)
    run(MemoryStack([Add(), Add(), top]), steps=1, x=torch.zeros(1, 1, 2, 2))
    below = [int(b.flatten()[0]) for b in top.seen[0]["below"]]
    assert below == [1, 2]  # outputs of the two layers under it at this step, nearest last
    deep = Add(below=5)
    run(MemoryStack([Add(), deep]), steps=1, x=torch.zeros(1, 1, 2, 2))
    assert [int(b.flatten()[0]) for b in deep.seen[0]["below"]] == [0, 1]  # the input counts


# ------------------------------------------------------------------- a new memory, end to end
@dataclass(frozen=True)
class ToyConfig(MemoryConfig):
    name: ClassVar[str] = "toy_gru"
    gain: float = 1.0

    def __post_init__(self):
        if self.gain <= 0:
            raise ConfigError(f"ToyConfig.gain={self.gain!r} is invalid: must be > 0")


class ToyGRU(Memory):
    """A convolutional GRU-like unit, enough to train STIP around."""

    MAPS = {"z_t": "update gate", "h_t": "hidden state"}
    TEMPORAL = "H"

    def __init__(self, hidden, gain):
        super().__init__()
        self.conv, self.gain = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1), gain

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.hidden, cfg.memory.gain)

    def init_state(self, x):
        return {"H": torch.zeros_like(x)}

    def forward(self, x, state, ctx):
        z, c = self.conv(torch.cat([x, state["H"]], 1)).chunk(2, 1)
        z = torch.sigmoid(z * self.gain)
        h = z * state["H"] + (1 - z) * torch.tanh(c)
        return h, {"H": h}, {"z_t": z, "h_t": h}


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(MEMORIES, "toy_gru", ToyGRU)  # the one registry line
    yield
    MemoryConfig.registry.pop("toy_gru", None)


def test_a_new_memory_plugs_into_stip_with_its_own_maps_and_config(toy):
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=ToyConfig(gain=2.0), init="default"))
    predictor, disc = build_model(cfg)
    assert all(isinstance(u, ToyGRU) for u in predictor.memory)
    assert set(predictor.maps()) == {"S_E", "T_E", "z_t", "h_t"}
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    assert out.features["z_t"].shape[:3] == (2, cfg.eval_length - 1, cfg.model.num_layers)
    out.predictions.mean().backward()
    assert all(p.grad is not None for p in predictor.memory.parameters())
    back = from_dict(to_dict(cfg))  # the section round-trips through a checkpoint's dict
    assert back == cfg and back.model.memory.gain == 2.0
    with pytest.raises(ConfigError, match=r"ToyConfig\.gain"):
        ToyConfig(gain=0)


def test_a_config_section_without_a_module_names_the_registry(monkeypatch):
    @dataclass(frozen=True)
    class Orphan(MemoryConfig):
        name: ClassVar[str] = "orphan"
    try:
        with pytest.raises(ConfigError, match="no module in stipkit.models.memories.MEMORIES"):
            build_stack(replace(get_preset("ci").model, memory=Orphan()))
    finally:
        MemoryConfig.registry.pop("orphan")


def test_every_registered_memory_has_a_config_section():
    assert set(MEMORIES) <= set(memory_names())


def test_old_checkpoint_configs_convert():
    d = to_dict(get_preset("study-official"))
    old = {**d, "model": {k: v for k, v in d["model"].items() if k not in ("memory", "name")}}
    old["model"].update(memory="stgru", update_gate_bias=1.0)  # stipkit 0.1's flat fields
    assert from_dict(old) == get_preset("study-official")
    with pytest.raises(ConfigError, match="Config.model.memory.name='lstm9000'"):
        from_dict({**d, "model": {**d["model"], "memory": {"name": "lstm9000"}}})
    with pytest.raises(ConfigError, match=r"Config\.model\.memory \(STGRUConfig\) has unknown field"):
        from_dict({**d, "model": {**d["model"], "memory": {"name": "stgru", "links": 9}}})


def test_a_checkpoint_with_an_unknown_memory_names_the_field(tmp_path):
    from stipkit.training.checkpoint import CheckpointError, load_predictor, save_checkpoint
    from stipkit.models import build_predictor

    cfg = get_preset("ci")
    path = save_checkpoint(tmp_path / "c.pt", predictor=build_predictor(cfg.model), config=cfg)
    assert load_predictor(path)[1] == cfg
    import torch as _torch
    ckpt = _torch.load(path, weights_only=True)
    ckpt["config"]["model"]["memory"] = {"name": "convgru9"}
    _torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"c\.pt.*Config\.model\.memory\.name='convgru9'"):
        load_predictor(path)


@pytest.mark.parametrize("name, field, bad", [("trajgru", "links", 0), ("e3d_lstm", "window", 0),
                                              ("rpm", "tau", -1), ("rpm", "theta", 1.5)])
def test_memory_section_fields_are_checked_and_named(name, field, bad):
    cls = MemoryConfig.registry[name]
    with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{field}={bad!r} is invalid: must be a positive integer"):
        memory_config(name, **{field: bad})
