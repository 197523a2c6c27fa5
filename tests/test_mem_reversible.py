"""Reversible predictive module (CrevNet, ICLR 2020, Sec. 3.2): shapes, gradients, state over
time, one step by hand, the invertible coupling, the zigzag memory M, the stack's ends (the
bottom pads S_E to two halves, the top reads one out), the authors' code's outputs (golden, from
tests/fixtures/authors_crevnet_tiny.pt), the parameter count at Table VII's setting, and the
memory plugged into STIP."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.reports import complexity
from stipkit.config import ConfigError, ModelConfig, get_preset
from stipkit.config.memories import memory_config
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, Context, MemoryStack, ReversiblePM
from _helpers import FIXTURES, assert_gradients, rollout

C, SIZE, K = 3, (5, 6), 3  # width of one half (= hidden), map size, kernel: tiny
H = 2 * C                  # the two halves between units


@pytest.fixture(autouse=True)
def _threads(one_thread):
    torch.manual_seed(0)


def _unit(**ends):
    return ReversiblePM(C, filter_size=K, **ends)


def _randomise(unit):
    with torch.no_grad():
        for p in unit.parameters():
            p.normal_(0, 0.3)


def test_registered_with_its_config_section():
    assert MEMORIES["reversible"] is ReversiblePM
    assert memory_config("reversible").attention_kernel == 3  # the authors' 3x3
    for bad in (4, 0):
        with pytest.raises(ConfigError, match=rf"ReversibleConfig\.attention_kernel={bad}"):
            memory_config("reversible", attention_kernel=bad)
    m = replace(get_preset("ci").model, hidden=7, filter_size=3,
                memory=memory_config("reversible", attention_kernel=5), init="default")
    unit = ReversiblePM.from_config(m)  # odd hidden is fine: each half is hidden wide
    assert unit.width == 7 and unit.att[3].kernel_size == (5, 5) and unit.conv_c.kernel_size == (3, 3)
    assert ReversiblePM.REVISION == 2 and "hidden-channel halves" in ReversiblePM.REVISION_NOTE


def test_shapes_of_output_state_and_maps():
    unit, x = _unit(), torch.randn(2, H, *SIZE)
    ctx = Context(shared=unit.init_shared(x))
    assert ctx.shared["M"].shape == (2, C, *SIZE)
    out, state, maps = unit(x, unit.init_state(x), ctx)
    assert out.shape == x.shape and set(state) == {"h", "c"} and ReversiblePM.TEMPORAL == "c"
    assert all(v.shape == (2, C, *SIZE) for v in state.values())
    assert ctx.shared["M"].shape == (2, C, *SIZE)
    assert set(maps) == set(ReversiblePM.MAPS)
    assert all(v.shape == (2, C, *SIZE) for v in maps.values())
    assert torch.equal(out[:, C:], x[:, :C])  # x_1 passes through, to the second half


def test_one_step_follows_the_equations():
    unit = _unit()
    _randomise(unit)
    x, h, c, m = torch.randn(2, H, *SIZE), *(torch.randn(2, C, *SIZE) for _ in range(3))
    ctx = Context(shared={"M": m})
    out, state, maps = unit(x, {"h": h, "c": c}, ctx)
    conv = lambda inp, layer: F.conv2d(inp, layer.weight, layer.bias,  # noqa: E731
                                       padding=layer.padding)
    x1, x2 = x[:, :C], x[:, C:]
    i, f, g = conv(torch.cat([x1, h, c], 1), unit.conv_c).split(C, 1)
    i, f = torch.sigmoid(i), torch.sigmoid(f)
    c_t = f * c + i * torch.tanh(g)
    i2, f2, g2 = conv(torch.cat([x1, m, c_t], 1), unit.conv_m).split(C, 1)
    i2, f2 = torch.sigmoid(i2), torch.sigmoid(f2)
    m_t = f2 * m + i2 * torch.tanh(g2)
    o = torch.sigmoid(conv(torch.cat([x1, h, c_t, m_t], 1), unit.conv_o))
    h_t = o * torch.tanh(conv(torch.cat([c_t, m_t], 1), unit.conv_cm))
    w1, n1, _, w2, n2, _, w3, _ = unit.att
    gn = lambda inp, n: F.group_norm(inp, 1, n.weight, n.bias, n.eps)  # noqa: E731
    a = torch.sigmoid(conv(F.relu(gn(conv(F.relu(gn(conv(h_t, w1), n1)), w2), n2)), w3))
    y2 = (1 - a) * x2 + a * h_t
    for got, want in ((out, torch.cat([y2, x1], 1)), (state["h"], h_t), (state["c"], c_t),
                      (ctx.shared["M"], m_t), (maps["i_t"], i), (maps["f_t"], f),
                      (maps["i'_t"], i2), (maps["f'_t"], f2), (maps["o_t"], o), (maps["g_t"], a)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_the_ends_of_the_stack_pad_the_input_and_read_one_half_out():
    """The bottom unit runs the coupling on [x, 0] (injective padding); the top unit returns
    the half it updated; a one-unit stack does both: hidden channels in and out."""
    inner = _unit()
    _randomise(inner)
    x, m = torch.randn(2, C, *SIZE), torch.randn(2, C, *SIZE)
    state = {"h": torch.randn(2, C, *SIZE), "c": torch.randn(2, C, *SIZE)}
    want, _, _ = inner(torch.cat([x, torch.zeros_like(x)], 1), state, Context(shared={"M": m}))
    for ends, expect in ((dict(pad_input=True), want), (dict(read_out=True), None),
                         (dict(pad_input=True, read_out=True), want[:, :C])):
        unit = _unit(**ends)
        unit.load_state_dict(inner.state_dict())
        inp = x if unit.pad_input else torch.cat([x, torch.zeros_like(x)], 1)
        got, _, _ = unit(inp, state, Context(shared={"M": m}))
        torch.testing.assert_close(got, want[:, :C] if expect is None else expect, atol=0, rtol=0)
    cfg = replace(get_preset("ci").model, hidden=C, filter_size=K, num_layers=3,
                  memory=memory_config("reversible"), init="default")
    ends = [(u.pad_input, u.read_out) for u in ReversiblePM.stack(cfg)]
    assert ends == [(True, False), (False, False), (False, True)]
    stack = MemoryStack(ReversiblePM.stack(cfg))
    outs, state, _ = rollout(stack, [torch.randn(2, C, *SIZE) for _ in range(2)])
    assert outs[-1].shape == (2, C, *SIZE) and state.units[0]["c"].shape == (2, C, *SIZE)


def test_the_coupling_is_invertible_given_the_states():
    """x is recovered from x_out given the state and the M the unit read: one unit, the bottom
    unit (its padding dropped), and a whole stack inverted top-down (each unit's state and M as
    they were when it ran)."""
    for unit, x in ((_unit(), torch.randn(2, H, *SIZE)),
                    (_unit(pad_input=True), torch.randn(2, C, *SIZE))):
        _randomise(unit)
        state = {"h": torch.randn(2, C, *SIZE), "c": torch.randn(2, C, *SIZE)}
        shared = {"M": torch.randn(2, C, *SIZE)}
        out, _, _ = unit(x, state, Context(shared=dict(shared)))
        torch.testing.assert_close(unit.inverse(out, state, Context(shared=shared)), x,
                                   atol=1e-5, rtol=0)
    stack = MemoryStack([_unit() for _ in range(3)])
    read = []  # per step: (state, M) each unit read
    for u in stack:
        u.register_forward_pre_hook(
            lambda mod, args: read[-1].append((args[1], {"M": args[2].shared["M"]})))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    st = stack.init_state(xs[0])
    for x in xs:
        read.append([])
        y, _ = stack(x, st)
        for u, (s, m) in zip(reversed(stack), reversed(read[-1])):
            y = u.inverse(y, s, Context(shared=m))
        torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    stack = MemoryStack([_unit(pad_input=True), _unit(read_out=True)])
    outs, state = rollout(stack, [torch.randn(2, C, *SIZE) for _ in range(3)])[:2]
    (sum(o.square().mean() for o in outs) + state.units[-1]["c"].mean()).backward()
    assert_gradients(stack)


def test_state_is_carried_over_time():
    unit, x = _unit(), torch.randn(2, H, *SIZE)
    zero, m = unit.init_state(x), unit.init_shared(x)["M"]
    base, _, _ = unit(x, zero, Context(shared={"M": m}))
    h, c = torch.randn(2, C, *SIZE), torch.randn(2, C, *SIZE)
    for s in ({"h": h, "c": 0 * c}, {"h": 0 * h, "c": c}):  # h_{t-1} and c_{t-1} matter
        other, _, _ = unit(x, s, Context(shared={"M": m}))
        assert not torch.allclose(base, other)
    other, _, _ = unit(x, zero, Context(shared={"M": torch.randn_like(m)}))  # and so does M
    assert not torch.allclose(base, other)
    stack = MemoryStack([_unit() for _ in range(2)])  # in a stack: step 1 changes step 2
    x2 = torch.randn(2, H, *SIZE)
    a, _ = rollout(stack, [x, x2])[:2]
    b, _ = rollout(stack, [torch.randn_like(x), x2])[:2]
    assert not torch.allclose(a[1], b[1])


def test_m_zigzags_up_the_stack_and_from_the_top_back_to_the_bottom():
    stack = MemoryStack([_unit() for _ in range(3)])
    read, wrote = [[] for _ in stack], [[] for _ in stack]
    for k, unit in enumerate(stack):
        unit.register_forward_pre_hook(lambda mod, args, k=k: read[k].append(args[2].shared["M"]))
        unit.register_forward_hook(lambda mod, args, out, k=k: wrote[k].append(args[2].shared["M"]))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    rollout(stack, xs)
    assert torch.equal(read[0][0], torch.zeros(2, C, *SIZE))
    for t in range(3):
        for k in range(1, 3):
            assert read[k][t] is wrote[k - 1][t]
        if t:
            assert read[0][t] is wrote[2][t - 1]


# ------------------------------------------------------------------ the authors' code
AUTHORS = torch.load(FIXTURES / "authors_crevnet_tiny.pt", weights_only=True)

# stipkit's fused convolutions -> the authors' STConvLSTMCell convolutions (output chunks in order)
_FUSED = {"conv_c": ("in_gate", "remember_gate", "cell_gate"),
          "conv_m": ("in_gate1", "remember_gate1", "cell_gate1"),
          "conv_o": ("out_gate",), "conv_cm": ("w1",)}


def _from_authors(sd: dict, k: int) -> dict:
    """Unit k's state dict from the authors' zig_rev_predictor state dict (layer k)."""
    out = {f"{ours}.{p}": torch.cat([sd[f"convlstm.{k}.{n}.{p}"] for n in theirs])
           for ours, theirs in _FUSED.items() for p in ("weight", "bias")}
    out.update({"att." + key.split(".", 2)[2]: v for key, v in sd.items()
                if key.startswith(f"att.{k}.")})
    return out


def test_matches_the_authors_code_step_by_step():
    """The authors' CrevNet predictor (gnosisyuw/CrevNet-Traffic4cast layers.py, 2 layers, 4
    channels a half, kernel 3, perturbed weights) against a stack of units built from a config
    in the authors' mode (filter_size 3, attention_kernel 3; between-layer units, as the
    authors' predictor reads the two halves of their encoder): three steps of outputs, memory
    M, each layer's h, c and attention g, within 1e-5."""
    a = AUTHORS["args"]
    c, layers = a["hidden_size"], a["n_layers"]
    cfg = ModelConfig(hidden=c, filter_size=a["kernel"], num_layers=layers, init="default",
                      memory=memory_config("reversible", attention_kernel=3))
    stack = MemoryStack([ReversiblePM.from_config(cfg, pad_input=False, read_out=False)
                         for _ in range(layers)])
    for k, unit in enumerate(stack):
        unit.load_state_dict(_from_authors(AUTHORS["state_dict"], k))
    x0 = torch.cat([AUTHORS["inputs"][0]["x1"], AUTHORS["inputs"][0]["x2"]], 1)
    state = stack.init_state(x0)
    torch.testing.assert_close(state.shared["M"], AUTHORS["memo0"], atol=0, rtol=0)
    worst = 0.0
    with torch.no_grad():
        for inp, want in zip(AUTHORS["inputs"], AUTHORS["outputs"]):
            out, maps = stack(torch.cat([inp["x1"], inp["x2"]], 1), state)
            pairs = [(out, torch.cat([want["x1"], want["x2"]], 1)), (state.shared["M"], want["memo"])]
            for k in range(layers):
                pairs += [(state.units[k]["h"], want["h"][k]), (state.units[k]["c"], want["c"][k]),
                          (maps[k]["g_t"], want["g"][k])]
            for got, ref in pairs:
                worst = max(worst, (got - ref).abs().max().item())
    assert worst < 1e-5, worst


# ------------------------------------------------------------------ STIP and Table VII
def test_plugs_into_stip_end_to_end():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("reversible"),
                                     init="default"))
    predictor, disc = build_model(cfg)
    assert all(isinstance(u, ReversiblePM) for u in predictor.memory)
    assert predictor.memory[0].pad_input and predictor.memory[-1].read_out
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    maps = {k: v for k, v in out.features.items() if k not in ("S_E", "T_E")}
    assert set(maps) == set(ReversiblePM.MAPS)
    assert set(predictor.maps()) == {"S_E", "T_E", *ReversiblePM.MAPS}
    for v in maps.values():
        assert v.shape == (2, cfg.eval_length - 1, cfg.model.num_layers, cfg.model.hidden,
                           *cfg.model.latent_size)
    out.predictions.mean().backward()
    assert_gradients(predictor.memory)


def test_parameter_count_at_table_vii_setting():
    """Hidden 128 (halves of 128, as the authors' cell), kernel 5: W_c and W_m 384 -> 384, W_o
    512 -> 128 (5x5), the 1x1 256 -> 128, the attention's 1x1, 3x3, 1x1 (128 -> 128) and two
    GroupNorms; biases everywhere. The authors' layers.py with KERNEL_SIZE = 5 has the same
    9,226,112 (3,458,944 with its KERNEL_SIZE = 3); Table VII: 7.08M."""
    with torch.device("meta"):
        unit = ReversiblePM(128, filter_size=5)
    c = 128
    want = (2 * (9 * c * c * 25 + 3 * c) + (4 * c * c * 25 + c) + (2 * c * c + c)
            + (c * c + c) + (c * c * 9 + c) + (c * c + c) + 2 * 2 * c)
    assert sum(p.numel() for p in unit.parameters()) == want == 9_226_112
    row = complexity.memory_table(["reversible"]).iloc[0]
    assert row.params_M * 2 ** 20 == want - 512 and row.norm_params_M * 2 ** 20 == 512
    assert "authors" in complexity.WHY_DIFFERENT["reversible"]
