"""ST-LSTM (PredRNN, NeurIPS 2017, Eq. 3): shapes, gradients, state over time, one step by hand,
the zigzag memory M, and the memory plugged into STIP."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import get_preset, memory_config
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, STLSTM, Context, MemoryStack
from _helpers import assert_gradients, rollout

H, SIZE, K = 4, (6, 6), 3  # hidden, map size, kernel: tiny


@pytest.fixture(autouse=True)
def _threads(one_thread):
    torch.manual_seed(0)


def _unit(**kw):
    return STLSTM(H, filter_size=K, **kw)


def test_registered_with_its_config_section():
    assert MEMORIES["stlstm"] is STLSTM
    assert memory_config("stlstm").forget_bias == 1.0


def test_shapes_of_output_state_and_maps():
    unit, x = _unit(), torch.randn(2, H, *SIZE)
    ctx = Context(shared=unit.init_shared(x))
    out, state, maps = unit(x, unit.init_state(x), ctx)
    assert out.shape == x.shape and set(state) == {"h", "c"} and STLSTM.TEMPORAL == "c"
    assert all(v.shape == x.shape for v in state.values()) and ctx.shared["M"].shape == x.shape
    assert set(maps) == set(STLSTM.MAPS) and all(v.shape == x.shape for v in maps.values())
    assert torch.equal(out, state["h"])  # x_out = H_t^l


def test_one_step_follows_equation_3():
    unit = _unit(forget_bias=0.3)
    with torch.no_grad():
        for p in unit.parameters():
            p.normal_(0, 0.3)
    x, h, c, m = (torch.randn(2, H, *SIZE) for _ in range(4))
    ctx = Context(shared={"M": m})
    out, state, gates = unit(x, {"h": h, "c": c}, ctx)
    conv = lambda inp, w, b=None: F.conv2d(inp, w, b, padding=K // 2)  # noqa: E731
    Wx = unit.conv_x.weight.split(H)  # W_xg, W_xi, W_xf, W'_xg, W'_xi, W'_xf, W_xo
    bx = unit.conv_x.bias.split(H)
    Wh, Wm = unit.conv_h.weight.split(H), unit.conv_m.weight.split(H)  # (g, i, f, o), (g', i', f')
    g = torch.tanh(conv(x, Wx[0], bx[0]) + conv(h, Wh[0]))
    i = torch.sigmoid(conv(x, Wx[1], bx[1]) + conv(h, Wh[1]))
    f = torch.sigmoid(conv(x, Wx[2], bx[2]) + conv(h, Wh[2]) + 0.3)
    C = f * c + i * g
    g2 = torch.tanh(conv(x, Wx[3], bx[3]) + conv(m, Wm[0]))
    i2 = torch.sigmoid(conv(x, Wx[4], bx[4]) + conv(m, Wm[1]))
    f2 = torch.sigmoid(conv(x, Wx[5], bx[5]) + conv(m, Wm[2]) + 0.3)
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
    """Hidden 128, kernel 5: 7+4+3+2 convolutions 128 -> 128 of 5x5, a 1x1 from 256, 7 biases."""
    with torch.device("meta"):
        unit = STLSTM(128, filter_size=5)
    assert sum(p.numel() for p in unit.parameters()) == 16 * 128 * 128 * 25 + 256 * 128 + 7 * 128
