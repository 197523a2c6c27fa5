"""MotionRNN (Wu et al., CVPR 2021): the MotionGRU unit by hand with an independent bilinear
sampler, the warp, the stack's layout, motion highway and state flow, gradients, state over time,
the config section's checks, the memory plugged into STIP, and a 3-layer stack against outputs
recorded from the authors' code (thuml/MotionRNN; tests/fixtures/README.md)."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import ConfigError, get_preset
from stipkit.config.memories import memory_config
from stipkit.models import build_model
from stipkit.models.memories import (MEMORIES, STLSTM, Context, MemoryStack, MotionGRU,
                                     MotionRNN)
from stipkit.models.memories.motion_gru import neighbour_warp
from _helpers import FIXTURES, assert_close as _close, assert_gradients, authors_frames, rollout
from _helpers import run_stack
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
    assert (s.forget_bias, s.gate_bias, s.neighbourhood, s.momentum, s.highway, s.carry) == \
        (1.0, False, 3, 0.5, True, "merged")  # the authors' code
    assert MotionGRU.TEMPORAL is None and MotionRNN.TEMPORAL == "c"
    assert "MotionRNN" in MotionGRU.CITE and set(MotionGRU.MAPS) == {"g_t", "|F_t|"}
    assert MotionRNN.REVISION == 2 and "merged" in MotionRNN.REVISION_NOTE


@pytest.mark.parametrize("field, value", [("neighbourhood", 0), ("neighbourhood", 2),
                                          ("neighbourhood", 3.0), ("momentum", 0),
                                          ("momentum", 1.5), ("momentum", "0.5"),
                                          ("forget_bias", float("nan")), ("forget_bias", None),
                                          ("highway", 1), ("gate_bias", 0), ("carry", "paper"),
                                          ("carry", None)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"MotionRNNConfig.{field}="):
        memory_config("motionrnn", **{field: value})


def test_layout_a_motion_gru_above_every_layer_but_the_top():
    units = MotionRNN.stack(_model_cfg(3))
    assert [type(u) for u in units] == [MotionRNN] * 3
    assert [type(u.motion) for u in units] == [MotionGRU, MotionGRU, type(None)]
    assert [u.conv_v is not None for u in units] == [True, False, False]  # the bottom highway
    assert [u.below for u in units] == [0] * 3  # the highway goes up in ctx.shared["V"]
    assert units[0].motion.neighbourhood == 3 and units[0].motion.momentum == 0.5
    assert units[0].conv_x.bias is None and units[0].carry == "merged"
    one = MotionRNN.stack(_model_cfg(1))  # one layer: no "between"
    assert len(one) == 1 and one[0].motion is None and one[0].conv_v is not None
    assert [u.conv_v for u in MotionRNN.stack(_model_cfg(3, highway=False))] == [None] * 3
    other = MotionRNN.stack(_model_cfg(2, neighbourhood=1, momentum=0.25, gate_bias=True,
                                       carry="own"))
    assert other[0].motion.momentum == 0.25 and other[0].motion.neighbourhood == 1
    assert other[0].conv_x.bias is not None and other[1].carry == "own"
    assert set(MemoryStack(MotionRNN.stack(_model_cfg(1))).maps()) == set(STLSTM.MAPS)
    with pytest.raises(ValueError, match="carry"):
        MotionRNN(H, K, carry="paper")
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
        assert all(s[key].shape == xs[0].shape for key in ("h", "c"))
        if unit.motion is not None:
            assert set(s) == {"h", "c", "F", "D"} and s["F"].shape == s["D"].shape == half
            assert set(m) == set(STLSTM.MAPS) | set(MotionGRU.MAPS)
            assert m["g_t"].shape == xs[0].shape and m["|F_t|"].shape == (2, 9, *half[2:])
            assert ((m["g_t"] >= 0) & (m["g_t"] <= 1)).all() and (m["|F_t|"] >= 0).all()
        else:
            assert set(s) == {"h", "c"} and set(m) == set(STLSTM.MAPS)
    assert set(stack.maps()) == set(STLSTM.MAPS) | set(MotionGRU.MAPS)
    assert state.shared["M"].shape == state.shared["V"].shape == xs[0].shape


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


def test_motion_highway_state_flow_and_the_st_lstm_inside():
    """A layer is PredRNN's ST-LSTM (same weights) plus (1 - o_t) V, V the ST-LSTM output of the
    layer below before its MotionGRU (ctx.shared["V"]; at the bottom a 1x1 of the input), then
    its MotionGRU, whose merged output goes up and is the layer's next H ("merged")."""
    layer = MotionRNN(H, K, 0.5, bottom=False)
    plain, gru = STLSTM(H, K, 0.5), layer.motion
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if "motion." not in k})
    x, v = torch.randn(2, H, *SIZE), torch.randn(2, H, *SIZE)
    state = {**layer.init_state(x), "h": torch.randn_like(x), "c": torch.randn_like(x)}
    state["F"], state["D"] = torch.randn_like(state["F"]), torch.randn_like(state["D"])
    m = torch.randn_like(x)
    base, bstate, gates = plain(x, state, Context(shared={"M": m}))
    ctx = Context(shared={"M": m, "V": v})
    out, ostate, maps = layer(x, state, ctx)
    hat = base + (1 - gates["o_t"]) * v                                # the motion highway
    merged, mstate, mmaps = gru(hat, {"F": state["F"], "D": state["D"]})
    _close(ctx.shared["V"], hat)                                       # up to the next layer
    for got, want in ((out, merged), (ostate["h"], merged), (ostate["c"], bstate["c"]),
                      (ostate["F"], mstate["F"]), (ostate["D"], mstate["D"]),
                      (maps["g_t"], mmaps["g_t"]), (maps["o_t"], gates["o_t"])):
        _close(got, want)
    own = MotionRNN(H, K, 0.5, bottom=False, carry="own")
    own.load_state_dict(layer.state_dict())
    out2, ostate2, _ = own(x, state, Context(shared={"M": m, "V": v}))
    _close(out2, merged)
    _close(ostate2["h"], hat)                                          # its own H over time
    # the bottom layer's highway: a 1x1 convolution (no bias) of the stack's input
    bottom = MotionRNN(H, K, 0.5, motion=False)
    bottom.load_state_dict({k: v for k, v in layer.state_dict().items() if "motion." not in k}
                           | {"conv_v.weight": torch.randn(H, H, 1, 1)}, strict=True)
    ctx = Context(shared={"M": m, "V": torch.full_like(x, 9.0)})       # stale V: overwritten
    out, _, _ = bottom(x, state, ctx)
    _close(out, base + (1 - gates["o_t"]) * F.conv2d(x, bottom.conv_v.weight))
    assert bottom.conv_v.bias is None and ctx.shared["V"] is out
    off = MotionRNN(H, K, 0.5, highway=False, motion=False)
    off.load_state_dict(plain.state_dict())
    assert torch.equal(off(x, state, Context(shared={"M": m}))[0], base)
    with pytest.raises(ValueError, match="ctx.shared\\['V'\\]"):
        MotionRNN(H, K, bottom=False)(x, state, Context(shared={"M": m}))


def test_m_and_the_highway_go_up_the_stack():
    stack = MemoryStack(MotionRNN.stack(_model_cfg(3)))
    read, wrote = [[] for _ in stack], [[] for _ in stack]
    for k, unit in enumerate(stack):
        unit.register_forward_pre_hook(lambda mod, a, k=k: read[k].append(dict(a[2].shared)))
        unit.register_forward_hook(lambda mod, a, o, k=k: wrote[k].append(dict(a[2].shared)))
    rollout(stack, [torch.randn(2, H, *SIZE) for _ in range(2)])
    for t in range(2):
        for k in (1, 2):
            for key in ("M", "V"):
                assert read[k][t][key] is wrote[k - 1][t][key]
    assert read[0][1]["M"] is wrote[2][0]["M"]  # M zigzags; V starts afresh at the bottom
    assert wrote[0][1]["V"] is not wrote[2][0]["V"]


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
    assert not torch.allclose(sa.units[0]["D"], sb.units[0]["D"])


def test_plugs_into_stip_end_to_end():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("motionrnn"), sted=False,
                                     mgir=False, init="default"))
    predictor, disc = build_model(cfg)
    n, m = cfg.model.num_layers, cfg.model
    assert [type(u) for u in predictor.memory] == [MotionRNN] * n
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


def test_parameter_count_of_a_layer_at_table_vii_setting():
    """Hidden 128, kernel 5: the code's ST-LSTM cell (6,586,368, no biases) with the MotionGRU
    and its Enc / Dec / gate above it (1,023,595); the bottom layer adds the highway's 1x1
    (128 x 128, the code's conv_first_v reads the frame's channels instead)."""
    with torch.device("meta"):
        count = lambda **kw: sum(  # noqa: E731
            p.numel() for p in MotionRNN(128, 5, **kw).parameters())
        assert count(bottom=False, motion=False) == 6_586_368
        assert count(bottom=False) == 6_586_368 + 1_023_595
        assert count() == 6_586_368 + 1_023_595 + 128 * 128
        assert count(highway=False) == count(bottom=False)


# ------------------------------------------------------------ against the authors' code
AUTHORS = torch.load(FIXTURES / "authors_motionrnn_tiny.pt", weights_only=True)


def authors_stack(case, **section) -> MemoryStack:
    """A MotionRNN stack holding the weights of the authors' ``MotionRNN_PredRNN.RNN``: the cells
    map by name as ST-LSTM's; ``enc_list``, ``dec_list``, ``gate_list`` and ``motion_list``
    go to layer l's ``motion`` (``update`` and ``reset`` stacked into ``conv_ur``; the warp's
    k x k stride-k kernel reordered into ``conv_warp``'s 1x1 over neighbour-major channels);
    ``conv_first_v`` is the bottom layer's ``conv_v``."""
    a, sd = case["args"], case["state_dict"]
    m = get_preset("ci").model
    cfg = replace(m, hidden=a["num_hidden"], filter_size=a["filter_size"], init="default",
                  num_layers=a["num_layers"], memory=memory_config("motionrnn", **section))
    stack, out = MemoryStack(MotionRNN.stack(cfg)), {"0.conv_v.weight": sd["conv_first_v.weight"]}
    for key, value in sd.items():
        if key.startswith("cell_list."):
            _, layer, name = key.split(".", 2)
            out[f"{layer}.{name.replace('.0.', '.').replace('conv_last', 'conv_cm')}"] = value
        for src, dst in (("enc_list", "enc"), ("dec_list", "dec"), ("gate_list", "conv_g")):
            if key.startswith(src + "."):
                _, layer, name = key.split(".")
                out[f"{layer}.motion.{dst}.{name}"] = value
    for layer in range(a["num_layers"] - 1):
        p, q = f"motion_list.{layer}.", f"{layer}.motion."
        for name in ("weight", "bias"):
            out[q + "conv_ur." + name] = torch.cat([sd[p + "update." + name],
                                                    sd[p + "reset." + name]])
            out[q + "conv_z." + name] = sd[p + "output." + name]
            out[q + "conv_m." + name] = sd[p + "warp.warp_gate." + name]
        w = sd[p + "warp.conv.weight"]  # (C', C', k, k): in channel c, neighbour (i, j)
        out[q + "conv_warp.weight"] = w.permute(0, 2, 3, 1).reshape(w.shape[0], -1, 1, 1)
    stack.load_state_dict(out)  # strict: every weight of the stack comes from the code's
    return stack


def run_authors_case(stack, case):
    """The stack over the recorded frames (patch 1, frame channels = hidden: the frames are the
    stack's input) from the code's recorded Xavier draws as initial state: per step the top
    output and each lower layer's carried H, and the state after the last step."""
    frames = authors_frames(case)
    init = case["init"]
    state = stack.init_state(frames[:, 0])
    for k, unit in enumerate(stack):  # one draw for H_0 and C_0, one for F_0 and D_0
        state.units[k].update(h=init["h"][k], c=init["h"][k])
        if unit.motion is not None:
            state.units[k].update(F=init["F"][k], D=init["F"][k])
    state.shared["M"] = init["M"]
    return run_stack(stack, frames, state)


def test_a_motionrnn_stack_equals_the_authors_code():
    """3 layers (2 MotionGRUs), 4 steps, the defaults (carry "merged", forget_bias 1, no gate
    biases, the bottom highway a 1x1 of the input), against thuml/MotionRNN's
    ``RNN.forward`` with the same weights and initial states."""
    case = AUTHORS
    top, lower, state = run_authors_case(authors_stack(case), case)
    last = state.units[:-1]
    errors = {"top H": (top - case["top"]).abs().max(),
              "merged X = next H": (lower - case["x"]).abs().max(),
              "C": (torch.stack([s["c"] for s in state.units]) - case["c_last"]).abs().max(),
              "M": (state.shared["M"] - case["m_last"]).abs().max(),
              "F": (torch.stack([s["F"] for s in last]) - case["F_last"]).abs().max(),
              "D": (torch.stack([s["D"] for s in last]) - case["D_last"]).abs().max()}
    assert max(errors.values()) < 1e-5, errors
    assert case["F_last"].abs().max() > 1  # offsets past a pixel: samples near and past the border
    # the state flow matters: the ST-LSTM's own H carried over time gives other outputs
    own = run_authors_case(authors_stack(case, carry="own"), case)[0]
    assert (own - case["top"]).abs().max() > 1e-3
