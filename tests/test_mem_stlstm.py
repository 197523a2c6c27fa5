"""ST-LSTM (PredRNN, NeurIPS 2017, Eq. 3): shapes, gradients, state over time, one step by hand,
the zigzag memory M, the memory plugged into STIP, and a 3-layer PredRNN stack against outputs
recorded from the authors' code (thuml/predrnn-pytorch; tests/fixtures/README.md)."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import ConfigError, get_preset
from stipkit.config.memories import memory_config
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, STLSTM, Context, MemoryStack
from _helpers import FIXTURES, assert_gradients, authors_frames, rollout, run_stack

H, SIZE, K = 4, (6, 6), 3  # hidden, map size, kernel: tiny


@pytest.fixture(autouse=True)
def _threads(one_thread):
    torch.manual_seed(0)


def _unit(**kw):
    return STLSTM(H, filter_size=K, **kw)


def test_registered_with_its_config_section():
    assert MEMORIES["stlstm"] is STLSTM
    s = memory_config("stlstm")
    assert (s.forget_bias, s.gate_bias) == (1.0, False)  # the authors' code
    assert STLSTM.REVISION == 2 and "gate_bias" in STLSTM.REVISION_NOTE
    assert _unit().conv_x.bias is None and _unit(gate_bias=True).conv_x.bias.shape == (7 * H,)


@pytest.mark.parametrize("field, value", [("forget_bias", float("nan")), ("forget_bias", None),
                                          ("forget_bias", True), ("gate_bias", 1)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"STLSTMConfig.{field}="):
        memory_config("stlstm", **{field: value})


def test_shapes_of_output_state_and_maps():
    unit, x = _unit(), torch.randn(2, H, *SIZE)
    ctx = Context(shared=unit.init_shared(x))
    out, state, maps = unit(x, unit.init_state(x), ctx)
    assert out.shape == x.shape and set(state) == {"h", "c"} and STLSTM.TEMPORAL == "c"
    assert all(v.shape == x.shape for v in state.values()) and ctx.shared["M"].shape == x.shape
    assert set(maps) == set(STLSTM.MAPS) and all(v.shape == x.shape for v in maps.values())
    assert torch.equal(out, state["h"])  # x_out = H_t^l


def test_one_step_follows_equation_3():
    unit = _unit(forget_bias=0.3, gate_bias=True)
    with torch.no_grad():
        for p in unit.parameters():
            p.normal_(0, 0.3)
    x, h, c, m = (torch.randn(2, H, *SIZE) for _ in range(4))
    ctx = Context(shared={"M": m})
    out, state, gates = unit(x, {"h": h, "c": c}, ctx)
    conv = lambda inp, w, b=None: F.conv2d(inp, w, b, padding=K // 2)  # noqa: E731
    Wx = unit.conv_x.weight.split(H)  # the code's order: W_x(i, f, g, i', f', g', o)
    bx = unit.conv_x.bias.split(H)
    Wh, Wm = unit.conv_h.weight.split(H), unit.conv_m.weight.split(H)  # (i, f, g, o), (i', f', g')
    i = torch.sigmoid(conv(x, Wx[0], bx[0]) + conv(h, Wh[0]))
    f = torch.sigmoid(conv(x, Wx[1], bx[1]) + conv(h, Wh[1]) + 0.3)
    g = torch.tanh(conv(x, Wx[2], bx[2]) + conv(h, Wh[2]))
    C = f * c + i * g
    i2 = torch.sigmoid(conv(x, Wx[3], bx[3]) + conv(m, Wm[0]))
    f2 = torch.sigmoid(conv(x, Wx[4], bx[4]) + conv(m, Wm[1]) + 0.3)
    g2 = torch.tanh(conv(x, Wx[5], bx[5]) + conv(m, Wm[2]))
    M = f2 * m + i2 * g2
    Wco, Wmo = unit.conv_o.weight.split(H, dim=1)
    o = torch.sigmoid(conv(x, Wx[6], bx[6]) + conv(h, Wh[3]) + conv(C, Wco) + conv(M, Wmo))
    Hn = o * torch.tanh(F.conv2d(torch.cat([C, M], 1), unit.conv_cm.weight))
    for got, want in ((state["c"], C), (ctx.shared["M"], M), (out, Hn), (state["h"], Hn),
                      (gates["i_t"], i), (gates["f_t"], f), (gates["i'_t"], i2),
                      (gates["f'_t"], f2), (gates["o_t"], o)):
        assert (got - want).abs().max() < 1e-5


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    stack = MemoryStack([_unit() for _ in range(2)])
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    outs, state, _ = rollout(stack, xs)
    (sum(o.square().mean() for o in outs) + state.units[-1]["c"].mean()).backward()
    assert_gradients(stack)


def test_state_is_carried_over_time():
    unit, x = _unit(), torch.randn(2, H, *SIZE)
    zero = unit.init_state(x)
    base, _, _ = unit(x, zero, Context(shared={"M": torch.zeros_like(x)}))
    for key in ("h", "c"):  # each of its own states matters
        other, _, _ = unit(x, {**zero, key: torch.randn_like(x)},
                           Context(shared={"M": torch.zeros_like(x)}))
        assert not torch.allclose(base, other), key
    other, _, _ = unit(x, zero, Context(shared={"M": torch.randn_like(x)}))  # and so does M
    assert not torch.allclose(base, other)
    # in a stack: a different first step gives a different second step
    stack = MemoryStack([_unit() for _ in range(2)])
    x2 = torch.randn(2, H, *SIZE)
    a, _, _ = rollout(stack, [x, x2])
    b, _, _ = rollout(stack, [torch.randn_like(x), x2])
    assert not torch.allclose(a[1], b[1])


def test_m_zigzags_up_the_stack_and_from_the_top_back_to_the_bottom():
    """Unit l+1 at step t reads unit l's M_t; the bottom unit at t reads the top unit's M_{t-1}
    (zeros at the first step)."""
    stack = MemoryStack([_unit() for _ in range(3)])
    read, wrote = [[] for _ in stack], [[] for _ in stack]
    for k, unit in enumerate(stack):
        unit.register_forward_pre_hook(lambda mod, args, k=k: read[k].append(args[2].shared["M"]))
        unit.register_forward_hook(lambda mod, args, out, k=k: wrote[k].append(args[2].shared["M"]))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    rollout(stack, xs)
    assert torch.equal(read[0][0], torch.zeros_like(xs[0]))
    for t in range(3):
        for k in range(1, 3):
            assert read[k][t] is wrote[k - 1][t]
        if t:
            assert read[0][t] is wrote[2][t - 1]
        assert all(wrote[k][t] is not read[k][t] for k in range(3))  # every unit writes a new M


def test_plugs_into_stip_end_to_end():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("stlstm"), init="default"))
    predictor, disc = build_model(cfg)
    assert all(isinstance(u, STLSTM) for u in predictor.memory)
    assert len(predictor.memory) == cfg.model.num_layers
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    maps = {k: v for k, v in out.features.items() if k not in ("S_E", "T_E")}
    assert set(maps) == set(STLSTM.MAPS)
    for v in maps.values():
        assert v.shape == (2, cfg.eval_length - 1, cfg.model.num_layers, cfg.model.hidden,
                           *cfg.model.latent_size)
    out.predictions.mean().backward()
    assert_gradients(predictor.memory)


def test_parameter_count_at_table_vii_setting():
    """Hidden 128, kernel 5: 7+4+3+2 convolutions 128 -> 128 of 5x5 and a 1x1 from 256, no
    biases (the code's SpatioTemporalLSTMCell: 6,586,368); gate_bias adds 7 x 128."""
    with torch.device("meta"):
        count = lambda **kw: sum(p.numel() for p in STLSTM(128, 5, **kw).parameters())  # noqa: E731
        assert count() == 16 * 128 * 128 * 25 + 256 * 128 == 6_586_368
        assert count(gate_bias=True) == 6_586_368 + 7 * 128


# ------------------------------------------------------------ against the authors' code
AUTHORS = torch.load(FIXTURES / "authors_predrnn_tiny.pt", weights_only=True)


def authors_stack(case, **kw) -> MemoryStack:
    """A stack of ST-LSTMs holding the weights of the authors' ``predrnn.RNN`` (its cells only;
    the state dict maps by name: ``cell_list.<l>.conv_x.0.weight`` -> ``<l>.conv_x.weight``,
    ``conv_last`` -> ``conv_cm``)."""
    a = case["args"]
    stack = MemoryStack([STLSTM(a["num_hidden"], a["filter_size"], **kw)
                         for _ in range(a["num_layers"])])
    sd = {}
    for key, value in case["state_dict"].items():
        if key.startswith("cell_list."):
            _, layer, name = key.split(".", 2)
            sd[f"{layer}.{name.replace('.0.', '.').replace('conv_last', 'conv_cm')}"] = value
    stack.load_state_dict(sd)  # strict: every weight of the stack comes from the code's
    return stack


def run_authors_case(stack, case):
    """The stack over the recorded frames (patch 1, frame channels = hidden, so the frames are
    the stack's input) from zero states: per step the top output and each lower unit's output,
    and the states after the last step."""
    frames = authors_frames(case)
    return run_stack(stack, frames, stack.init_state(frames[:, 0]))


def test_a_predrnn_stack_equals_the_authors_code():
    """3 ST-LSTM layers, 4 steps, zero initial states, forget_bias 1 and no gate biases (the
    defaults), against thuml/predrnn-pytorch's ``RNN.forward`` with the same weights."""
    case = AUTHORS
    stack = authors_stack(case)
    top, lower, state = run_authors_case(stack, case)
    pred = F.conv2d(top.flatten(0, 1), case["state_dict"]["conv_last.weight"]).view_as(top)
    errors = {"top H": (top - case["top"]).abs().max(),
              "lower H": (lower - case["x"]).abs().max(),
              "C": (torch.stack([s["c"] for s in state.units]) - case["c_last"]).abs().max(),
              "M": (state.shared["M"] - case["m_last"]).abs().max(),
              "frames": (pred.permute(1, 0, 3, 4, 2) - case["predictions"]).abs().max()}
    assert max(errors.values()) < 1e-5, errors
    assert case["top"].abs().max() > 0.1  # not a vacuous comparison
    # the comparison tells chunk orders apart: conv_x's chunks moved by one gate do not match
    swapped = authors_stack(case)
    with torch.no_grad():
        swapped[1].conv_x.weight.copy_(swapped[1].conv_x.weight.roll(8, 0))
    assert (run_authors_case(swapped, case)[0] - case["top"]).abs().max() > 1e-3
