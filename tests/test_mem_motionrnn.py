"""MotionRNN (Wu et al., CVPR 2021): the MotionGRU unit (Eq. 2-5, as remembered) by hand with an
independent bilinear sampler, the warp, the stack's layout and motion highway (Eq. 1), gradients,
state over time, the config section's checks, and the memory plugged into STIP."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import ConfigError, get_preset, memory_config
from stipkit.models import build_model
from stipkit.models.memories import (MEMORIES, STLSTM, Context, MemoryStack, MotionGRU,
                                     MotionRNN)
from stipkit.models.memories.motion_gru import neighbour_warp
from _helpers import assert_close as _close, assert_gradients, rollout
from _helpers import conv_same as conv, randomise as _randomise

H, SIZE, K = 8, (6, 6), 3  # hidden (Enc's width: 2), map size, kernel: tiny


@pytest.fixture(autouse=True)
def _threads(one_thread):
    torch.manual_seed(0)


def _model_cfg(num_layers=3, **section):
    m = get_preset("ci").model
    return replace(m, hidden=H, filter_size=K, num_layers=num_layers, init="default",
                   memory=memory_config("motionrnn", **section))


def bilinear(img, y, x):
    """img (C, h, w) read at real pixel positions y, x (same shape): four corners, zeros outside
    (written out, independent of grid_sample)."""
    c, h, w = img.shape
    y0, x0, out = y.floor(), x.floor(), 0
    for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
        weight = (1 - (y - yy).abs()) * (1 - (x - xx).abs())
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long().flatten()
        out = out + img.flatten(1)[:, idx].view(c, *y.shape) * weight * inside
    return out


def test_registered_with_its_config_section():
    assert MEMORIES["motionrnn"] is MotionRNN and issubclass(MotionRNN, STLSTM)
    s = memory_config("motionrnn")
    assert (s.forget_bias, s.neighbourhood, s.momentum, s.highway) == (1.0, 3, 0.5, True)
    assert MotionGRU.TEMPORAL is None and MotionRNN.TEMPORAL == "c"
    assert "MotionRNN" in MotionGRU.CITE and set(MotionGRU.MAPS) == {"g_t", "|F_t|"}


@pytest.mark.parametrize("field, value", [("neighbourhood", 0), ("neighbourhood", 2),
                                          ("neighbourhood", 3.0), ("momentum", 0),
                                          ("momentum", 1.5), ("momentum", "0.5"),
                                          ("forget_bias", float("nan")), ("forget_bias", None),
                                          ("highway", 1)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"MotionRNNConfig.{field}="):
        memory_config("motionrnn", **{field: value})


def test_layout_st_lstm_and_motion_gru_alternate():
    types = lambda cfg: [type(u) for u in MotionRNN.stack(cfg)]  # noqa: E731
    assert types(_model_cfg(3)) == [MotionRNN, MotionGRU, MotionRNN, MotionGRU, MotionRNN]
    assert types(_model_cfg(1)) == [MotionRNN]  # one layer: no "between"
    units = MotionRNN.stack(_model_cfg(3))
    assert [u.below for u in units] == [1, 0, 2, 0, 2]  # the highway's source: ctx.below[0]
    assert [u.below for u in MotionRNN.stack(_model_cfg(3, highway=False))] == [0] * 5
    assert units[1].neighbourhood == 3 and units[1].momentum == 0.5
    assert MotionRNN.stack(_model_cfg(2, neighbourhood=1, momentum=0.25))[1].momentum == 0.25
    with pytest.raises(ValueError, match="temporal state"):  # a MotionGRU can't end a stack
        MemoryStack([MotionRNN(H, K), MotionGRU(H, K)])


def test_shapes_over_a_3_step_rollout():
    stack = MemoryStack(MotionRNN.stack(_model_cfg(3)))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    outs, state, maps = rollout(stack, xs)
    assert all(o.shape == xs[0].shape for o in outs) and len(maps) == 3
    half = (2, 18, SIZE[0] // 2, SIZE[1] // 2)
    for k, unit in enumerate(stack):
        s, m = state.units[k], maps[-1][k]
        if isinstance(unit, MotionGRU):
            assert set(s) == {"F", "D"} and s["F"].shape == s["D"].shape == half
            assert m["g_t"].shape == xs[0].shape and m["|F_t|"].shape == (2, 9, *half[2:])
            assert ((m["g_t"] >= 0) & (m["g_t"] <= 1)).all() and (m["|F_t|"] >= 0).all()
        else:
            assert set(s) == {"h", "c"} and set(m) == set(STLSTM.MAPS)
            assert all(v.shape == xs[0].shape for v in s.values())
    assert set(stack.maps()) == set(STLSTM.MAPS) | set(MotionGRU.MAPS)
    assert state.shared["M"].shape == xs[0].shape


@pytest.mark.parametrize("size", [SIZE, (5, 7)])  # odd: Dec's extra row/column is cropped
def test_one_motion_gru_step_follows_the_equations(size):
    unit = MotionGRU(H, K, neighbourhood=3, momentum=0.3)
    _randomise(unit)
    x = torch.randn(2, H, *size)
    zero = unit.init_state(x)
    f_prev, d_prev = (1.5 * torch.randn_like(zero["F"]) for _ in range(2))
    out, state, maps = unit(x, {"F": f_prev, "D": d_prev}, Context())
    c, mo, n = unit.width, 18, 9
    e = F.conv2d(x, unit.enc.weight, unit.enc.bias, stride=2, padding=K // 2)      # Enc(H)
    (wu, wr), (bu, br) = unit.conv_ur.weight.split(mo), unit.conv_ur.bias.split(mo)
    u = torch.sigmoid(conv(torch.cat([e, f_prev], 1), wu, bu))                     # Eq. 2
    r = torch.sigmoid(conv(torch.cat([e, f_prev], 1), wr, br))
    z = torch.tanh(conv(torch.cat([e, r * f_prev], 1), unit.conv_z.weight, unit.conv_z.bias))
    f_trans = u * z + (1 - u) * f_prev
    d = d_prev + 0.3 * (f_prev - d_prev)                                           # Eq. 3
    flow = f_trans + d                                                             # Eq. 4
    m = torch.sigmoid(conv(e, unit.conv_m.weight, unit.conv_m.bias))
    h2, w2 = e.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(h2).float(), torch.arange(w2).float(), indexing="ij")
    warped = torch.zeros_like(e)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                k = 3 * i + j
                sample = bilinear(e[b], rows + i - 1 + flow[b, k], cols + j - 1 + flow[b, n + k])
                w_n = unit.conv_warp.weight[:, k * c:(k + 1) * c, 0, 0]            # W_n
                warped[b] += torch.einsum("oc,chw->ohw", w_n, m[b, k] * sample)
    dec = F.conv_transpose2d(warped, unit.dec.weight, unit.dec.bias, stride=2, padding=1)
    dec = dec[..., :size[0], :size[1]]
    g = torch.sigmoid(conv(torch.cat([dec, x], 1), unit.conv_g.weight, unit.conv_g.bias))
    X = g * dec + (1 - g) * x                                                      # Eq. 5
    for got, want in ((out, X), (state["F"], flow), (state["D"], d), (maps["g_t"], g),
                      (maps["|F_t|"], (flow[:, :n] ** 2 + flow[:, n:] ** 2).sqrt())):
        _close(got, want)
    assert flow.abs().max() > 1.5  # the offsets did reach past the neighbours (and outside)


def test_zero_flow_is_the_identity_warp():
    x = torch.randn(2, 3, 5, 7)
    zero = lambda k: torch.zeros(2, 2 * k * k, 5, 7)  # noqa: E731
    assert neighbour_warp(x, zero(1), 1).shape == (2, 1, 3, 5, 7)
    _close(neighbour_warp(x, zero(1), 1)[:, 0], x)
    out = neighbour_warp(x, zero(3), 3)
    pad = F.pad(x, (1, 1, 1, 1))
    for i in range(3):
        for j in range(3):  # neighbour (i - 1, j - 1) of p: x shifted, zeros outside
            _close(out[:, 3 * i + j], pad[..., i:i + 5, j:j + 7])
    # an integer flow of (+1 row, -2 columns) moves every sample there
    flow = torch.cat([torch.ones(2, 1, 5, 7), -2 * torch.ones(2, 1, 5, 7)], 1)
    _close(neighbour_warp(x, flow, 1)[:, 0], F.pad(x, (2, 0, 0, 1))[..., 1:, :7])
    # half a pixel to the right: the mean of two columns (and half of the last one)
    half = torch.cat([torch.zeros(2, 1, 5, 7), 0.5 * torch.ones(2, 1, 5, 7)], 1)
    _close(neighbour_warp(x, half, 1)[:, 0], (x + F.pad(x, (0, 1))[..., 1:]) / 2)


def test_motion_highway_and_the_st_lstm_inside():
    """A layer is PredRNN's ST-LSTM (same weights, same output without highway) plus
    (1 - o_t) H_t^{l-1}; the highway reads the ST-LSTM below, not the MotionGRU's output."""
    layer, plain = MotionRNN(H, K, 0.5, below=2), STLSTM(H, K, 0.5)
    plain.load_state_dict(layer.state_dict())
    x, h_below = torch.randn(2, H, *SIZE), torch.randn(2, H, *SIZE)
    state = {"h": torch.randn_like(x), "c": torch.randn_like(x)}
    m = torch.randn_like(x)
    base, bstate, gates = plain(x, state, Context(shared={"M": m}))
    out, ostate, _ = layer(x, state, Context(shared={"M": m}, below=[h_below, x]))
    _close(out, base + (1 - gates["o_t"]) * h_below)
    assert torch.equal(ostate["h"], out) and torch.equal(ostate["c"], bstate["c"])
    off = MotionRNN(H, K, 0.5, highway=False)
    off.load_state_dict(layer.state_dict())
    assert torch.equal(off(x, state, Context(shared={"M": m}))[0], base)
    # in a stack: layer 2 (unit 2) reads layer 1 (unit 0), the bottom reads the stack's input
    stack = MemoryStack(MotionRNN.stack(_model_cfg(2)))
    seen = {}
    for k in (0, 2):
        stack[k].register_forward_pre_hook(lambda mod, a, k=k: seen.update({k: a[2].below}))
    out0 = []
    stack[0].register_forward_hook(lambda mod, a, o: out0.append(o[0]))
    xs = [torch.randn(2, H, *SIZE)]
    rollout(stack, xs)
    assert seen[0][0] is xs[0] and seen[2][0] is out0[0] and len(seen[2]) == 2


def test_m_zigzags_through_the_motion_grus_untouched():
    stack = MemoryStack(MotionRNN.stack(_model_cfg(2)))  # ST-LSTM, MotionGRU, ST-LSTM
    read, wrote = [[] for _ in stack], [[] for _ in stack]
    for k, unit in enumerate(stack):
        unit.register_forward_pre_hook(lambda mod, a, k=k: read[k].append(a[2].shared["M"]))
        unit.register_forward_hook(lambda mod, a, o, k=k: wrote[k].append(a[2].shared["M"]))
    rollout(stack, [torch.randn(2, H, *SIZE) for _ in range(2)])
    for t in range(2):
        assert read[1][t] is wrote[1][t] is wrote[0][t] and read[2][t] is wrote[0][t]
    assert read[0][1] is wrote[2][0]


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    stack = MemoryStack(MotionRNN.stack(_model_cfg(3)))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    outs, state = rollout(stack, xs)[:2]
    (sum(o.square().mean() for o in outs) + state.units[-1]["c"].mean()).backward()
    assert_gradients(stack)


def test_state_is_carried_over_time():
    unit, x = MotionGRU(H, K), torch.randn(2, H, *SIZE)
    _randomise(unit)
    zero = unit.init_state(x)
    base = unit(x, zero)[0]
    for key in ("F", "D"):  # F_{t-1} drives the GRU and D_t; D_{t-1} the trend
        assert not torch.allclose(base, unit(x, {**zero, key: torch.randn_like(zero[key])})[0]), key
    stack = MemoryStack(MotionRNN.stack(_model_cfg(2)))
    x2, x3 = torch.randn_like(x), torch.randn_like(x)
    a, sa = rollout(stack, [x, x2, x3])[:2]
    b, sb = rollout(stack, [torch.randn_like(x), x2, x3])[:2]
    assert not torch.allclose(a[2], b[2])  # changing frame 0 changes the output at step 3
    assert not torch.allclose(sa.units[1]["D"], sb.units[1]["D"])


def test_plugs_into_stip_end_to_end():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("motionrnn"), sted=False,
                                     mgir=False, init="default"))
    predictor, disc = build_model(cfg)
    n, m = cfg.model.num_layers, cfg.model
    assert [type(u) for u in predictor.memory] == [MotionRNN] + [MotionGRU, MotionRNN] * (n - 1)
    frames = torch.rand(2, cfg.eval_length, 3, m.height, m.width)
    out = predictor(frames, return_features=True)
    assert out.predictions.shape == (2, cfg.eval_length - 1, 3, m.height, m.width)
    maps = {k: v for k, v in out.features.items() if k not in ("S_E", "T_E")}
    assert set(maps) == set(STLSTM.MAPS) | set(MotionGRU.MAPS)
    steps, lat = cfg.eval_length - 1, m.latent_size
    assert maps["o_t"].shape == (2, steps, n, m.hidden, *lat)
    assert maps["g_t"].shape == (2, steps, n - 1, m.hidden, *lat)
    assert maps["|F_t|"].shape == (2, steps, n - 1, 9, lat[0] // 2, lat[1] // 2)
    out.predictions.mean().backward()
    assert_gradients(predictor.memory)


def test_parameter_count_at_hidden_16():
    """Enc 16 -> 4 (5x5, stride 2); GRU gates 3x3 on [E, F] (4 + 18 -> 3 x 18); mask 3x3 4 -> 9;
    W_n 1x1 36 -> 4; Dec 4x4 4 -> 16; g_t 5x5 32 -> 16; biases on all but W_n."""
    with torch.device("meta"):
        unit = MotionGRU(16, filter_size=5)
    want = (16 * 4 * 25 + 4) + 3 * (22 * 18 * 9 + 18) + (4 * 9 * 9 + 9) + 36 * 4 \
        + (4 * 16 * 16 + 16) + (32 * 16 * 25 + 16)
    assert sum(p.numel() for p in unit.parameters()) == want == 26_683
