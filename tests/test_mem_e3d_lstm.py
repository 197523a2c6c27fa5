"""E3D-LSTM (Wang et al., ICLR 2019, Eq. 1-2): shapes, gradients, state over time, one step by
hand, its wiring (the zigzag M, the window of tau past states, the input window), and STIP end
to end."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import get_preset, memory_config
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, MemoryStack
from stipkit.models.memories.base import Context
from stipkit.models.memories.e3d_lstm import E3DLSTM
from _helpers import assert_gradients

pytestmark = pytest.mark.usefixtures("one_thread")
B, C, SIZE = 2, 4, (5, 6)


def assert_close(a, b, atol=1e-5, rtol=0):
    """(torch.testing.assert_close's first call costs seconds of imports: a plain check.)"""
    assert a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=rtol), (a - b).abs().max()


def unit(seed=0, window=2):
    torch.manual_seed(seed)
    return E3DLSTM(C, SIZE, filter_size=3, window=window)


def rand_state(window=2, scale=1.0):
    return {"h": scale * torch.randn(B, C, *SIZE), "c": scale * torch.randn(B, C, *SIZE),
            "x_hist": scale * torch.randn(B, (window - 1) * C, *SIZE)}


def step(cell, x, state, past=None, m=None):
    ctx = Context(shared={"m": torch.zeros_like(x) if m is None else m},
                  past=[state] if past is None else past)
    return (*cell(x, state, ctx), ctx)


@pytest.mark.parametrize("window", [1, 2, 3])
def test_shapes_of_output_state_and_maps(window):
    cell = unit(window=window)
    x = torch.randn(B, C, *SIZE)
    out, state, maps, ctx = step(cell, x, cell.init_state(x))
    assert out.shape == (B, C, *SIZE) and torch.equal(out, state["h"])
    assert set(state) == {"h", "c", "x_hist"} and E3DLSTM.TEMPORAL == "c"
    assert state["c"].shape == (B, C, *SIZE)
    assert state["x_hist"].shape == (B, (window - 1) * C, *SIZE)
    assert ctx.shared["m"].shape == (B, C, *SIZE)
    assert set(maps) == set(E3DLSTM.MAPS) and all(v.shape == (B, C, *SIZE) for v in maps.values())
    assert cell.window == window and cell.conv_x.in_channels == window * C


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    stack = MemoryStack([unit(0), unit(1)])
    x = torch.randn(B, C, *SIZE)
    state = stack.init_state(x)
    loss = 0
    for _ in range(3):
        out, _ = stack(x, state)
        loss = loss + out.square().mean()
    loss.backward()
    assert_gradients(stack)


def test_the_state_is_carried_over_time():
    cell = unit()
    x = torch.randn(B, C, *SIZE)
    s = rand_state()
    base = step(cell, x, s)[0]
    for key in s:  # each of h, c and the input window changes the output (a random change:
        other = {**s, key: s[key] + torch.randn_like(s[key])}  # LayerNorm drops c + const)
        assert not torch.allclose(base, step(cell, x, other)[0]), key
    stack = MemoryStack([unit()])
    state = stack.init_state(x)
    first, _ = stack(x, state)
    second, _ = stack(x, state)
    assert torch.equal(state.units[0]["h"], second) and not torch.allclose(first, second)


def test_one_step_follows_equations_1_and_2():
    cell = unit()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(std=0.3)
    x, m_prev = torch.randn(B, C, *SIZE), torch.randn(B, C, *SIZE)
    old, s = rand_state(), rand_state()                 # the states of t-2 and t-1
    out, new, maps, ctx = step(cell, x, s, past=[old, s], m=m_prev)

    # the (tau, 3, 3) 3D kernels over the windows, time axis second to last as in a Conv3d
    as_3d = lambda w: w.reshape(w.shape[0], 2, C, 3, 3).transpose(1, 2)  # noqa: E731
    xs = torch.stack([s["x_hist"], x], 2)                                     # X_{t-1:t}
    hs = torch.stack([old["h"], s["h"]], 2)                                   # H_{t-2:t-1}
    wx = F.conv3d(xs, as_3d(cell.conv_x.weight), cell.conv_x.bias, padding=(0, 1, 1))
    wh = F.conv3d(hs, as_3d(cell.conv_h.weight), padding=(0, 1, 1))
    assert wx.shape[2] == wh.shape[2] == 1  # the window's depth is collapsed
    wx, wh = wx[:, :, 0].split(C, 1), wh[:, :, 0].split(C, 1)
    R = torch.sigmoid(wx[0] + wh[0])
    I = torch.sigmoid(wx[1] + wh[1])  # noqa: E741
    G = torch.tanh(wx[2] + wh[2])
    q = R.flatten(2).transpose(1, 2)                                          # (B, HW, C)
    kv = torch.cat([old["c"].flatten(2), s["c"].flatten(2)], 2).transpose(1, 2)  # (B, 2HW, C)
    recall = (torch.softmax(q @ kv.transpose(1, 2), -1) @ kv).transpose(1, 2).reshape(B, C, *SIZE)
    n = cell.norm
    c = I * G + F.layer_norm(s["c"] + recall, n.normalized_shape, n.weight, n.bias)
    wm = F.conv2d(m_prev, cell.conv_m.weight, padding=1).split(C, 1)
    I2, G2 = torch.sigmoid(wx[3] + wm[0]), torch.tanh(wx[4] + wm[1])
    F2 = torch.sigmoid(wx[5] + wm[2])
    m = I2 * G2 + F2 * m_prev
    w_co, w_mo = cell.conv_o.weight.split(C, 1)
    O = torch.sigmoid(wx[6] + wh[3] + F.conv2d(c, w_co, padding=1)  # noqa: E741
                      + F.conv2d(m, w_mo, padding=1))
    w_c, w_m = cell.conv_last.weight.split(C, 1)
    h = O * torch.tanh(F.conv2d(c, w_c) + F.conv2d(m, w_m))

    for name, want in {"R_t": R, "I_t": I, "O_t": O, "Im_t": I2, "Fm_t": F2}.items():
        assert_close(maps[name], want)
    assert_close(new["c"], c)
    assert_close(ctx.shared["m"], m)
    assert_close(out, h)
    assert_close(new["h"], h)
    assert torch.equal(new["x_hist"], x)  # the window moves on


def test_the_window_comes_from_the_stack_with_the_given_state_as_its_newest():
    cell = unit()
    x = torch.randn(B, C, *SIZE)
    old, s = rand_state(), rand_state()
    out = step(cell, x, s, past=[old, s])[0]
    # ctx.past's newest entry is replaced by the state given (STIP merges T_E into it) ...
    stale = {**s, "c": s["c"] + 1.0}
    assert torch.equal(out, step(cell, x, s, past=[old, stale])[0])
    # ... the older ones are read: the cell recalls C_{t-2}, the 3D kernel reads H_{t-2}
    for key in ("c", "h"):
        assert not torch.allclose(out, step(cell, x, s, past=[{**old, key: old[key] + 1}, s])[0])
    # before tau states exist (t = 1): H is padded with zeros and the recall runs over the cells
    # there are -- the same as an older state with H = 0 and the same C (recall over [C, C]
    # equals recall over [C])
    first = step(cell, x, s, past=[s])[0]
    assert_close(first, step(cell, x, s, past=[{**s, "h": torch.zeros_like(x)}, s])[0])


def test_in_a_stack_m_zigzags_and_past_holds_tau_states():
    units = [unit(0, window=3), unit(1, window=3)]
    stack = MemoryStack(units)
    seen = []
    for k, u in enumerate(units):
        u.register_forward_pre_hook(lambda mod, args, k=k: seen.append(
            (k, args[2].shared["m"], len(args[2].past))))
        u.register_forward_hook(lambda mod, args, out, k=k: seen.append(
            (k, args[2].shared["m"], None)))
    x = torch.randn(B, C, *SIZE)
    state = stack.init_state(x)
    assert set(state.shared) == {"m"} and not state.shared["m"].any()
    for _ in range(4):
        stack(x, state)
    reads = [m for k, m, n in seen if n is not None]
    writes = [m for k, m, n in seen if n is None]
    # unit 1 reads what unit 0 wrote at this step; unit 0 reads what unit 1 wrote at t-1
    assert all(r is w for r, w in zip(reads[1:], writes[:-1]))
    assert state.shared["m"] is writes[-1]
    assert [n for k, m, n in seen if n is not None and k == 0] == [1, 2, 3, 3]
    assert [len(p) for p in state.past] == [3, 3]


def test_e3d_lstm_plugs_into_stip_end_to_end():
    assert MEMORIES["e3d_lstm"] is E3DLSTM
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("e3d_lstm", window=2),
                                     init="default"))
    predictor, _ = build_model(cfg)
    assert all(isinstance(u, E3DLSTM) and u.window == 2 for u in predictor.memory)
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    for name in E3DLSTM.MAPS:
        assert out.features[name].shape[:3] == (2, cfg.eval_length - 1, cfg.model.num_layers)
    out.predictions.mean().backward()
    assert all(p.grad is not None for p in predictor.memory.parameters())
