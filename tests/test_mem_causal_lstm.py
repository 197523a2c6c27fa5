"""Causal-LSTM and the gradient highway unit (PredRNN++, ICML 2018, Eq. 1-2): shapes, gradients,
state over time, one step of each by hand, the zigzag M, the highway's place and own state Z, the
memory plugged into STIP, and the authors' cell (``authors_code``) against a golden output of the
authors' code's PyTorch port (OpenSTL @ c74deb5, recorded once; see fixtures/README.md)."""
from dataclasses import replace

import pytest
import torch

from stipkit.config import ConfigError, get_preset
from stipkit.config.memories import memory_config
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, CausalLSTM, Context, MemoryStack
from stipkit.models.memories.causal_lstm import GHU
from _helpers import FIXTURES, assert_close as _close, assert_gradients, rollout
from _helpers import conv_same as conv, randomise as _randomise

H, SIZE, K = 4, (6, 6), 3  # hidden, map size, kernel: tiny


@pytest.fixture(autouse=True)
def _threads(one_thread):
    torch.manual_seed(0)


def _model_cfg(num_layers=3, **section):
    m = get_preset("ci").model
    return replace(m, hidden=H, filter_size=K, num_layers=num_layers, init="default",
                   memory=memory_config("causal_lstm", **section))


def test_registered_with_its_config_section():
    assert MEMORIES["causal_lstm"] is CausalLSTM
    section = memory_config("causal_lstm")
    assert section.forget_bias == 1.0 and section.highway is True
    assert section.authors_code is False  # Eq. 1, the tables' cell
    for name in ("authors_code", "highway"):
        with pytest.raises(ConfigError, match=f"CausalLSTMConfig.{name}"):
            memory_config("causal_lstm", **{name: "yes"})
    unit = CausalLSTM.from_config(_model_cfg(2, authors_code=True))
    assert unit.authors_code and unit.conv_m3.kernel_size == (K, K)


def test_shapes_of_output_state_and_maps():
    x = torch.randn(2, H, *SIZE)
    unit, ghu = CausalLSTM(H, K), GHU(H, K)
    ctx = Context(shared=unit.init_shared(x))
    out, state, maps = unit(x, unit.init_state(x), ctx)
    assert out.shape == x.shape and set(state) == {"h", "c"} and CausalLSTM.TEMPORAL == "c"
    assert all(v.shape == x.shape for v in state.values()) and ctx.shared["M"].shape == x.shape
    assert set(maps) == set(CausalLSTM.MAPS) and all(v.shape == x.shape for v in maps.values())
    assert torch.equal(out, state["h"])
    z, zstate, zmaps = ghu(x, ghu.init_state(x), ctx)
    assert z.shape == x.shape and set(zstate) == {"Z"} and GHU.TEMPORAL is None
    assert set(zmaps) == set(GHU.MAPS) and all(v.shape == x.shape for v in zmaps.values())


def test_one_step_follows_equation_1():
    """Eq. 1 with W_1..W_5 as single convolutions of the concatenations the paper writes."""
    unit = CausalLSTM(H, K, forget_bias=0.3)
    _randomise(unit)
    x, h, c, m = (torch.randn(2, H, *SIZE) for _ in range(4))
    ctx = Context(shared={"M": m})
    out, state, gates = unit(x, {"h": h, "c": c}, ctx)
    wx, bx = unit.conv_x.weight.split(3 * H), unit.conv_x.bias.split(3 * H)  # W_1, W_2, W_4 rows
    wc2 = unit.conv_c2.weight.split(3 * H)                                    # W_2, W_4 rows
    W1 = torch.cat([wx[0], unit.conv_h.weight, unit.conv_c.weight], 1)        # [X, H, C]
    W2 = torch.cat([wx[1], wc2[0], unit.conv_m.weight], 1)                    # [X, C_t, M^{k-1}]
    W4 = torch.cat([wx[2], wc2[1], unit.conv_mo.weight], 1)                   # [X, C_t, M_t^k]
    g, i, f = conv(torch.cat([x, h, c], 1), W1, bx[0]).split(H, 1)
    g, i, f = torch.tanh(g), torch.sigmoid(i), torch.sigmoid(f + 0.3)
    C = f * c + i * g
    g2, i2, f2 = conv(torch.cat([x, C, m], 1), W2, bx[1]).split(H, 1)
    g2, i2, f2 = torch.tanh(g2), torch.sigmoid(i2), torch.sigmoid(f2 + 0.3)
    M = f2 * torch.tanh(conv(m, unit.conv_m3.weight)) + i2 * g2              # W_3: 1x1
    o = torch.tanh(conv(torch.cat([x, C, M], 1), W4, bx[2]))
    Hn = o * torch.tanh(conv(torch.cat([C, M], 1), unit.conv_cm.weight))     # W_5: 1x1
    assert unit.conv_m3.kernel_size == unit.conv_cm.kernel_size == (1, 1)
    for got, want in ((state["c"], C), (ctx.shared["M"], M), (out, Hn), (state["h"], Hn),
                      (gates["i_t"], i), (gates["f_t"], f), (gates["i'_t"], i2),
                      (gates["f'_t"], f2), (gates["o_t"], o)):
        _close(got, want)


def test_ghu_follows_equation_2():
    ghu = GHU(H, K)
    _randomise(ghu)
    x, z = torch.randn(2, H, *SIZE), torch.randn(2, H, *SIZE)
    out, state, maps = ghu(x, {"Z": z}, Context())
    (wpx, wsx), (bp, bs) = ghu.conv_x.weight.split(H), ghu.conv_x.bias.split(H)
    wpz, wsz = ghu.conv_z.weight.split(H)
    P = torch.tanh(conv(x, wpx, bp) + conv(z, wpz))
    S = torch.sigmoid(conv(x, wsx, bs) + conv(z, wsz))
    Z = S * P + (1 - S) * z
    _close(out, Z)
    _close(state["Z"], Z)
    _close(maps["S_t"], S)


def test_the_highway_sits_between_the_first_and_second_layer():
    types = lambda cfg: [type(u) for u in CausalLSTM.stack(cfg)]  # noqa: E731
    assert types(_model_cfg(3)) == [CausalLSTM, GHU, CausalLSTM, CausalLSTM]
    assert types(_model_cfg(3, highway=False)) == [CausalLSTM] * 3
    assert types(_model_cfg(1)) == [CausalLSTM]  # one layer: no "between"
    with pytest.raises(ValueError, match="temporal state"):  # a GHU can't end a stack
        MemoryStack([CausalLSTM(H, K), GHU(H, K)])


def _recorded_stack(cfg):
    stack = MemoryStack(CausalLSTM.stack(cfg))
    seen = [[] for _ in stack]  # per unit, per step: (x, own state, M read, M after)
    for k, unit in enumerate(stack):
        unit.register_forward_pre_hook(
            lambda mod, args, k=k: seen[k].append([args[0], args[1], args[2].shared.get("M")]))
        unit.register_forward_hook(
            lambda mod, args, out, k=k: seen[k][-1].extend([out[0], args[2].shared.get("M")]))
    return stack, seen


def test_m_zigzags_through_the_stack_past_the_highway():
    """Unit k+1 at step t reads unit k's M_t (the GHU leaves M alone); the bottom unit at t
    reads the top unit's M_{t-1} (zeros at the first step)."""
    stack, seen = _recorded_stack(_model_cfg(3))  # units: LSTM0, GHU, LSTM1, LSTM2
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    rollout(stack, xs)
    lstm = [0, 2, 3]
    read = lambda k, t: seen[k][t][2]    # noqa: E731
    wrote = lambda k, t: seen[k][t][4]   # noqa: E731
    assert torch.equal(read(0, 0), torch.zeros_like(xs[0]))
    for t in range(3):
        assert wrote(1, t) is read(1, t) is wrote(0, t)  # the GHU passes M through untouched
        assert read(2, t) is wrote(0, t) and read(3, t) is wrote(2, t)
        if t:
            assert read(0, t) is wrote(3, t - 1)
        assert all(wrote(k, t) is not read(k, t) for k in lstm)


def test_the_highway_reads_layer_1_feeds_layer_2_and_carries_its_own_z():
    stack, seen = _recorded_stack(_model_cfg(2))  # units: LSTM0, GHU, LSTM1
    ghu = stack[1]
    _randomise(ghu)
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    outs, state = rollout(stack, xs)[:2]
    for t in range(3):
        x_ghu, own, _, z_out, _ = seen[1][t]
        assert x_ghu is seen[0][t][3]              # X_t = H_t^1
        assert seen[2][t][0] is z_out              # layer 2 reads Z_t
        if t:
            assert own["Z"] is seen[1][t - 1][3]   # Z_{t-1}: its own output of the last step
    assert torch.equal(seen[1][0][1]["Z"], torch.zeros_like(xs[0]))  # Z_0 = 0
    assert state.units[1]["Z"] is seen[1][2][3]
    # the step-3 output by hand (Eq. 2) from H_3^1 and Z_2
    x, z = seen[0][2][3], seen[1][1][3]
    (wpx, wsx), (bp, bs) = ghu.conv_x.weight.split(H), ghu.conv_x.bias.split(H)
    wpz, wsz = ghu.conv_z.weight.split(H)
    S = torch.sigmoid(conv(x, wsx, bs) + conv(z, wsz))
    _close(seen[1][2][3], S * torch.tanh(conv(x, wpx, bp) + conv(z, wpz)) + (1 - S) * z)


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    stack = MemoryStack(CausalLSTM.stack(_model_cfg(2)))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    outs, state = rollout(stack, xs)[:2]
    (sum(o.square().mean() for o in outs) + state.units[-1]["c"].mean()).backward()
    assert_gradients(stack)


def test_state_is_carried_over_time():
    unit, x = CausalLSTM(H, K), torch.randn(2, H, *SIZE)
    zero, m0 = unit.init_state(x), torch.zeros_like(x)
    base, _, _ = unit(x, zero, Context(shared={"M": m0}))
    for key in ("h", "c"):
        other, _, _ = unit(x, {**zero, key: torch.randn_like(x)}, Context(shared={"M": m0}))
        assert not torch.allclose(base, other), key
    other, _, _ = unit(x, zero, Context(shared={"M": torch.randn_like(x)}))
    assert not torch.allclose(base, other)
    ghu = GHU(H, K)
    assert not torch.allclose(ghu(x, {"Z": m0})[0], ghu(x, {"Z": torch.randn_like(x)})[0])
    stack = MemoryStack(CausalLSTM.stack(_model_cfg(2)))
    x2 = torch.randn(2, H, *SIZE)
    a, _ = rollout(stack, [x, x2])[:2]
    b, _ = rollout(stack, [torch.randn_like(x), x2])[:2]
    assert not torch.allclose(a[1], b[1])


def test_plugs_into_stip_end_to_end():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("causal_lstm"),
                                     init="default"))
    predictor, disc = build_model(cfg)
    n = cfg.model.num_layers
    assert [type(u) for u in predictor.memory] == [CausalLSTM, GHU] + [CausalLSTM] * (n - 1)
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    maps = {k: v for k, v in out.features.items() if k not in ("S_E", "T_E")}
    assert set(maps) == set(CausalLSTM.MAPS) | set(GHU.MAPS)
    for key, v in maps.items():  # a unit axis over the units exposing the map
        units = 1 if key in GHU.MAPS else n
        assert v.shape == (2, cfg.eval_length - 1, units, cfg.model.hidden, *cfg.model.latent_size)
    out.predictions.mean().backward()
    assert_gradients(predictor.memory)


def test_parameter_counts_at_table_vii_setting():
    """Hidden 128, kernel 5. Causal LSTM: 21 convolutions 128 -> 128 of 5x5, W_3 and W_5 1x1,
    7 gate biases (Table VII lists 7.20M). GHU: 4 convolutions of 5x5 and 2 biases."""
    with torch.device("meta"):
        unit, ghu = CausalLSTM(128, 5), GHU(128, 5)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(unit) == 21 * 128 * 128 * 25 + 3 * 128 * 128 + 7 * 128 == 8_651_648
    assert count(ghu) == 4 * 128 * 128 * 25 + 2 * 128 == 1_638_656


def test_parameter_counts_of_the_authors_cell():
    """authors_code: W_3 filter_size wide (biased), conv_h with o_t's chunk, conv_m without g'_t's:
    22 convolutions of 5x5, W_5 1x1 (biased), 7 gate biases. The authors' TensorFlow cell has
    9,043,968 weights + 23 x 128 biases; OpenSTL's port 9,043,968 used (+ an unused conv_o)."""
    with torch.device("meta"):
        unit = CausalLSTM(128, 5, authors_code=True)
    count = sum(p.numel() for p in unit.parameters())
    assert count == 22 * 128 * 128 * 25 + 2 * 128 * 128 + 7 * 128 + 2 * 128 == 9_045_120
    assert round(count / 2**20, 2) == 8.63


# ----------------------------------------------------------------------------- the authors' code
def _chunks(w, order):
    """Rows of w in ``order`` of its len(order) equal chunks."""
    parts = w.chunk(len(order))
    return torch.cat([parts[i] for i in order])


def _from_openstl(cells: dict, ghu: dict, num_layers: int) -> dict:
    """OpenSTL's CausalLSTMCell / GHU state dicts -> the stack's: unit 0 is cell 0, unit 1 the
    GHU, unit k + 1 cell k. Their chunk orders: conv_x (i, f, g, i', f', g', o), conv_h
    (i, f, g, o), conv_c (i, f, g), conv_c2m (i', g', f', o), conv_m (i', f', W_3); ours put g
    first. The port has no biases (zeros here) and a conv_o its forward never uses."""
    sd = {}
    for k in range(num_layers):
        w = lambda name: cells[f"{k}.{name}"]  # noqa: E731
        u = 0 if k == 0 else k + 1
        conv_m = w("conv_m.0.weight").chunk(3)
        sd.update({f"{u}.conv_x.weight": _chunks(w("conv_x.0.weight"), (2, 0, 1, 5, 3, 4, 6)),
                   f"{u}.conv_h.weight": _chunks(w("conv_h.0.weight"), (2, 0, 1, 3)),
                   f"{u}.conv_c.weight": _chunks(w("conv_c.0.weight"), (2, 0, 1)),
                   f"{u}.conv_c2.weight": _chunks(w("conv_c2m.0.weight"), (1, 0, 2, 3)),
                   f"{u}.conv_m.weight": torch.cat(conv_m[:2]),
                   f"{u}.conv_m3.weight": conv_m[2],
                   f"{u}.conv_mo.weight": w("conv_om.0.weight"),
                   f"{u}.conv_cm.weight": w("conv_last.weight")})
        for name, n in (("conv_x", 7), ("conv_m3", 1), ("conv_cm", 1)):
            sd[f"{u}.{name}.bias"] = torch.zeros(n * w("conv_om.0.weight").shape[0])
        assert f"{k}.conv_o.0.weight" in cells  # created, never used by the port's forward
    sd["1.conv_x.weight"] = ghu["x_concat.0.weight"]  # chunks (P, S) = (p, u)
    sd["1.conv_z.weight"] = ghu["z_concat.0.weight"]
    sd["1.conv_x.bias"] = torch.zeros(ghu["x_concat.0.weight"].shape[0])
    return sd


def test_the_authors_cell_equals_the_authors_code_with_the_highway():
    """A 3-layer stack with the GHU between layers 1 and 2 (PredRNN++'s), 4 steps, equals the
    recorded outputs of OpenSTL's port of the authors' cell (openstl/modules/predrnnpp_modules.py,
    wired as openstl/models/predrnnpp_model.py) within 1e-5: every layer's H and C, the zigzag
    M, the highway's Z. Without authors_code (Eq. 1) the same weights cannot even load."""
    gold = torch.load(FIXTURES / "authors_predrnnpp_tiny.pt", weights_only=True)
    a = gold["args"]
    cfg = replace(_model_cfg(a["num_layers"], authors_code=True), hidden=a["hidden"],
                  filter_size=a["filter_size"])
    stack = MemoryStack(CausalLSTM.stack(cfg))
    sd = _from_openstl(gold["cells"], gold["ghu"], a["num_layers"])
    stack.load_state_dict(sd)
    lstm = [0] + list(range(2, a["num_layers"] + 1))  # the causal LSTMs' places in the stack
    err = 0.0
    with torch.no_grad():
        state = stack.init_state(gold["inputs"][0])
        for t, x in enumerate(gold["inputs"]):
            out, _ = stack(x, state)
            got = [out, state.shared["M"], state.units[1]["Z"]]
            want = [gold["h"][t, -1], gold["m"][t], gold["z"][t]]
            for k, u in enumerate(lstm):
                got += [state.units[u]["h"], state.units[u]["c"]]
                want += [gold["h"][t, k], gold["c"][t, k]]
            err = max(err, max((g - w).abs().max().item() for g, w in zip(got, want)))
    assert err < 1e-5, err
    paper = MemoryStack(CausalLSTM.stack(replace(cfg, memory=memory_config("causal_lstm"))))
    with pytest.raises(RuntimeError, match="size mismatch"):
        paper.load_state_dict(sd)
