"""E3D-LSTM (Wang et al., ICLR 2019, Eq. 1-2) as its authors' code builds it: the outputs of the
authors' TensorFlow cell and of OpenSTL's port (recorded in fixtures/authors_e3d_lstm_tiny.pt),
shapes, gradients, state over time, one step by hand, the growing history, the wiring (the
zigzag M, the clips between units), its config section, and STIP end to end."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import get_preset
from stipkit.config.memories import memory_config
from stipkit.config.errors import ConfigError
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, MemoryStack
from stipkit.models.memories.base import Context
from stipkit.models.memories.e3d_lstm import E3DLSTM
from _helpers import FIXTURES, assert_gradients, randomise

pytestmark = pytest.mark.usefixtures("one_thread")
B, C, SIZE = 2, 4, (5, 6)


def assert_close(a, b, atol=1e-5):
    assert a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=0), (a - b).abs().max()


def unit(seed=0, window=2, **kw):
    torch.manual_seed(seed)
    return E3DLSTM(C, SIZE, filter_size=3, window=window, **kw)


def stack_of(n=2, **kw):
    """n units wired as E3DLSTM.stack wires them: each above the bottom reads the clip below."""
    return MemoryStack([unit(k, clip_from_below=k > 0, **kw) for k in range(n)])


def clip(h, c):
    """A unit's clip from its state: slot 0 ("h"/"c") and the rest."""
    return torch.cat([h.unsqueeze(2), c], 2)


def rand_state(window=2, past=1):
    r = lambda *d: torch.randn(B, C, *d, *SIZE)  # noqa: E731
    return {"h": r(), "h_rest": r(window - 1), "c": r(), "c_rest": r(window - 1),
            "history": r(past * window), "x_hist": r(window - 1)}


def step(cell, x, state, m=None, **shared):
    m = torch.zeros(B, C, cell.depth, *SIZE) if m is None else m
    ctx = Context(shared={"m": m, **shared})
    return (*cell(x, state, ctx), ctx)


# ------------------------------------------------------------------ the authors' outputs
GOLDEN = torch.load(FIXTURES / "authors_e3d_lstm_tiny.pt", weights_only=True)


def run_recorded(units, frames, steps):
    """Run ``units`` teacher-forced on recorded frames (B, T, H, W, C); each step's H and C
    clips of every unit, (steps, K, B, C, tau, H, W), and the top unit's last H clip."""
    stack = MemoryStack(units)
    xs = frames.permute(0, 1, 4, 2, 3)
    state, hs, cs = stack.init_state(xs[:, 0]), [], []
    with torch.no_grad():
        for t in range(steps):
            stack(xs[:, t], state)
            hs.append(torch.stack([clip(s["h"], s["h_rest"]) for s in state.units]))
            cs.append(torch.stack([clip(s["c"], s["c_rest"]) for s in state.units]))
    return torch.stack(hs), torch.stack(cs), state.shared["h_clip"]


@pytest.mark.parametrize("case", sorted(GOLDEN["openstl"]["cases"]))
def test_code_openstl_reproduces_openstls_port(case):
    """OpenSTL's E3DLSTM_Model (its layer_norm switch on and off), every parameter perturbed;
    its state dict mapped onto stipkit's units: every unit's H and C at every step, and the
    frames its head makes of the top H clip, within 1e-5."""
    rec = GOLDEN["openstl"]["cases"][case]
    cfg, sd = rec["config"], rec["state_dict"]
    units = []
    for k in range(cfg["layers"]):
        u = E3DLSTM(cfg["hidden"], (cfg["height"], cfg["width"]), cfg["filter_size"], cfg["window"],
                    zigzag=False, gate_norm=bool(cfg["layer_norm"]), code="openstl",
                    in_channels=cfg["channels"] if k == 0 else None, clip_from_below=k > 0)
        mine = {n[len(f"cell_list.{k}."):]: v for n, v in sd.items() if n.startswith(f"cell_list.{k}.")}
        u.load_state_dict(E3DLSTM.openstl_state_dict(mine))
        units.append(u)
    h, c, _ = run_recorded(units, rec["frames"], cfg["steps"])
    assert_close(h, rec["h"])
    assert_close(c, rec["c"])
    top = h[:, -1].flatten(0, 1)                             # every step's top H clip
    frames = F.conv3d(top, sd["conv_last.weight"], stride=(cfg["window"], 1, 1)).squeeze(2)
    assert_close(frames.unflatten(0, (cfg["steps"], -1)), rec["pred"].permute(1, 0, 4, 2, 3))


def test_code_google_reproduces_the_authors_tensorflow_cell():
    """google/e3d_lstm's rnn() (TF 2's tf.compat.v1), every variable perturbed; its variables
    mapped onto stipkit's units: every unit's H and C at every step and the last frame, within
    1e-5. Their cells return the M they are given: zigzag=False."""
    rec = GOLDEN["google"]
    cfg, var = rec["config"], rec["variables"]
    units = []
    for k in range(cfg["layers"]):
        u = E3DLSTM(cfg["hidden"], (cfg["height"], cfg["width"]), cfg["filter_size"], cfg["window"],
                    zigzag=False, in_channels=cfg["channels"] if k == 0 else None,
                    clip_from_below=k > 0)
        u.load_state_dict(E3DLSTM.google_state_dict(var, f"generator/e3d-lstm/e3d{k}"))
        units.append(u)
    h, c, top = run_recorded(units, rec["frames"], cfg["steps"])
    tf_layout = lambda a: a.permute(0, 1, 2, 6, 3, 4, 5)  # noqa: E731  (.., tau, H, W, C) -> (.., C, tau, H, W)
    assert_close(h, tf_layout(rec["h"]))
    assert_close(c, tf_layout(rec["c"]))
    head = var["generator/e3d-lstm/conv3d/kernel:0"].permute(4, 3, 0, 1, 2)
    frame = F.conv3d(top, head, var["generator/e3d-lstm/conv3d/bias:0"], stride=(2, 1, 1)).squeeze(2)
    assert_close(frame, rec["pred"][:, -1].permute(0, 3, 1, 2))


# ------------------------------------------------------------------ the unit
@pytest.mark.parametrize("window, code", [(1, "google"), (2, "google"), (3, "google"),
                                          (2, "openstl"), (3, "openstl")])
def test_shapes_of_output_state_and_maps(window, code):
    cell = unit(window=window, code=code)
    x = torch.randn(B, C, *SIZE)
    state = cell.init_state(x)
    assert state["history"].shape == (B, C, 0, *SIZE)
    for t in range(1, 3):
        out, state, maps, ctx = step(cell, x, state)
        assert out.shape == (B, C, *SIZE) and torch.equal(out, state["h"])
        assert set(state) == {"h", "h_rest", "c", "c_rest", "history", "x_hist"}
        assert state["c"].shape == (B, C, *SIZE) and E3DLSTM.TEMPORAL == "c"
        for key in ("h_rest", "c_rest", "x_hist"):
            assert state[key].shape == (B, C, window - 1, *SIZE), key
        assert state["history"].shape == (B, C, t * window, *SIZE)  # C_0..C_{t-1}
        assert ctx.shared["m"].shape == ctx.shared["h_clip"].shape == (B, C, window, *SIZE)
        assert set(maps) == set(E3DLSTM.MAPS) and all(v.shape == (B, C, *SIZE) for v in maps.values())
    assert cell.depth == window and cell.window == 0  # the unit keeps its own history


@pytest.mark.parametrize("code", ["google", "openstl"])
def test_gradients_reach_every_parameter_through_a_3_step_rollout(code):
    stack = stack_of(2, code=code)
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
    randomise(cell)
    x = torch.randn(B, C, *SIZE)
    s = rand_state()
    base = step(cell, x, s)[0]
    for key in s:  # each part of the state changes the output
        other = {**s, key: s[key] + torch.randn_like(s[key])}
        assert not torch.allclose(base, step(cell, x, other)[0]), key
    stack = stack_of(1)
    state = stack.init_state(x)
    first, _ = stack(x, state)
    second, _ = stack(x, state)
    assert torch.equal(state.units[0]["h"], second) and not torch.allclose(first, second)


def test_one_step_follows_the_authors_cell():
    """google: 'same' 3D convolutions (at tau = 2 one zero slot after the clip), LNs over
    (C, tau, H, W) with a gain and shift per channel, the recall over every past cell, the
    code's M update and output gate -- written out with 5D kernels."""
    cell = unit()
    randomise(cell)
    x, m_prev = torch.randn(B, C, *SIZE), torch.randn(B, C, 2, *SIZE)
    s = rand_state(past=2)                                # C_0, C_1 in the history, C_2 in s
    out, new, maps, ctx = step(cell, x, s, m=m_prev)

    def conv(mod, v):  # the stored (out, 2*C, 3, 3) weight as the Conv3d's (out, C, 2, 3, 3)
        w = mod.weight.unflatten(1, (2, -1)).transpose(1, 2)
        return F.conv3d(F.pad(v, (0, 0, 0, 0, 0, 1)), w, mod.bias, padding=(0, 1, 1))

    def norm(mod, v):
        mean = v.mean((1, 2, 3, 4), keepdim=True)
        var = v.var((1, 2, 3, 4), keepdim=True, unbiased=False)
        return (v - mean) / (var + 1e-12).sqrt() * mod.weight.view(-1, 1, 1, 1) + mod.bias.view(-1, 1, 1, 1)

    xs = torch.stack([s["x_hist"][:, :, 0], x], 2)                      # X_{t-1:t}
    wx = norm(cell.norm_x, conv(cell.conv_x, xs)).split(C, 1)           # i g r o i' g' f'
    wh = norm(cell.norm_h, conv(cell.conv_h, clip(s["h"], s["h_rest"]))).split(C, 1)  # i g r o
    I, G, R = torch.sigmoid(wx[0] + wh[0]), torch.tanh(wx[1] + wh[1]), torch.sigmoid(wx[2] + wh[2])  # noqa: E741
    c_prev = clip(s["c"], s["c_rest"])
    cells = torch.cat([s["history"], c_prev], 2)                          # C_0, C_1, C_2
    q = R.permute(0, 2, 3, 4, 1).reshape(B, -1, C)                        # a vector per position
    kv = cells.permute(0, 2, 3, 4, 1).reshape(B, -1, C)
    recall = (torch.softmax(q @ kv.transpose(1, 2), -1) @ kv).view(B, 2, *SIZE, C).permute(0, 4, 1, 2, 3)
    c = norm(cell.norm_c, c_prev + recall) + I * G
    wm = norm(cell.norm_m, conv(cell.conv_m, m_prev)).split(C, 1)        # i' f' g' m
    I2, F2 = torch.sigmoid(wx[4] + wm[0]), torch.sigmoid(wx[6] + wm[1] + 1.0)
    m = F2 * torch.tanh(wm[3]) + I2 * torch.tanh(wx[5] + wm[2])
    O = torch.sigmoid(torch.tanh(wx[3] + wh[3] + conv(cell.conv_oc, c) + conv(cell.conv_om, m)))  # noqa: E741
    last = cell.conv_last
    h = O * torch.tanh(F.conv3d(torch.cat([c, m], 1), last.weight.unsqueeze(2), last.bias))

    for name, want in {"R_t": R, "I_t": I, "O_t": O, "Im_t": I2, "Fm_t": F2}.items():
        assert_close(maps[name], want[:, :, 0])
    assert_close(clip(new["c"], new["c_rest"]), c)
    assert_close(clip(new["h"], new["h_rest"]), h)
    assert_close(out, h[:, :, 0])
    assert_close(ctx.shared["m"], m)
    assert_close(ctx.shared["h_clip"], h)
    assert torch.equal(new["history"], cells) and torch.equal(new["x_hist"], x.unsqueeze(2))


def test_the_history_grows_unless_capped():
    x = torch.randn(B, C, *SIZE)
    full, capped = unit(), unit(history=2)
    capped.load_state_dict(full.state_dict())
    states = {"full": full.init_state(x), "capped": capped.init_state(x)}
    for t in range(1, 5):
        outs = {}
        for name, cell in (("full", full), ("capped", capped)):
            outs[name], states[name], _, _ = step(cell, x, states[name])
        assert states["full"]["history"].shape[2] == 2 * t            # C_0..C_{t-1}
        assert states["capped"]["history"].shape[2] == 2 * min(t, 1)  # the one before C_t
        assert torch.equal(outs["full"], outs["capped"]) == (t <= 2)  # recall over <= 2 cells
    # a capped unit recalls the latest cells: the same as an uncapped one given only those
    s = rand_state(past=3)
    want = step(full, x, {**s, "history": s["history"][:, :, -2:]})[0]
    assert_close(step(capped, x, s)[0], want)


def test_the_m_update_zigzags_or_stays_at_m0_as_in_the_code():
    x = torch.randn(B, C, *SIZE)
    for zigzag in (True, False):
        stack = stack_of(2, zigzag=zigzag)
        seen = []
        for u in stack:
            u.register_forward_pre_hook(lambda mod, args: seen.append(args[2].shared["m"]))
        state = stack.init_state(x)
        assert set(state.shared) == {"m"} and state.shared["m"].shape == (B, C, 2, *SIZE)
        for _ in range(3):
            stack(x, state)
        if zigzag:  # each unit reads a new M: the one below's, or the top's at t-1
            assert all(a is not b for a, b in zip(seen, seen[1:])) and seen[-1].any()
        else:       # the authors' code: every unit at every step reads M_0 = 0
            assert all(m is seen[0] for m in seen) and not state.shared["m"].any()


def test_units_above_read_the_clip_below_and_the_bottom_its_input_window():
    cfg = replace(get_preset("ci").model, memory=memory_config("e3d_lstm"), num_layers=3)
    units = E3DLSTM.stack(cfg)
    assert [u.clip_from_below for u in units] == [False, True, True]
    x = torch.randn(B, cfg.hidden, *cfg.latent_size)
    assert "x_hist" in units[0].init_state(x) and "x_hist" not in units[1].init_state(x)
    cell = unit(clip_from_below=True)
    s = {k: v for k, v in rand_state().items() if k != "x_hist"}
    below = torch.randn(B, C, 2, *SIZE)
    out = step(cell, torch.randn(B, C, *SIZE), s, h_clip=below)[0]
    other = step(cell, torch.zeros(B, C, *SIZE), s, h_clip=below)[0]
    assert torch.equal(out, other)  # the 2D input is not read: the clip is
    with pytest.raises(ValueError, match="h_clip"):
        step(cell, torch.zeros(B, C, *SIZE), s)


def test_the_temporal_state_stip_merges_into_is_slot_0_of_c():
    cell = unit()
    randomise(cell)
    x, s = torch.randn(B, C, *SIZE), rand_state()
    out = step(cell, x, s)[0]
    merged = step(cell, x, {**s, "c": s["c"] + 1.0})[0]
    assert not torch.allclose(out, merged)
    assert torch.equal(step(cell, x, s)[1]["history"][:, :, -2], s["c"])  # the merged C_{t-1} is recalled


def test_config_section_fields_are_checked_and_reach_the_unit():
    for field, bad in (("window", 0), ("history", -1), ("history", 1.5), ("zigzag", 1),
                       ("gate_norm", "yes"), ("forget_bias", float("nan")), ("code", "tf")):
        with pytest.raises(ConfigError, match=rf"E3DLSTMConfig\.{field}="):
            memory_config("e3d_lstm", **{field: bad})
    section = memory_config("e3d_lstm", window=3, history=4, zigzag=False, gate_norm=False,
                            forget_bias=0.0, code="openstl")
    cfg = replace(get_preset("ci").model, memory=section)
    u = E3DLSTM.from_config(cfg)
    assert (u.depth, u.history, u.zigzag, u.forget_bias, u.code) == (3, 4, False, 0.0, "openstl")
    assert isinstance(u.norm_x, torch.nn.Identity) and isinstance(u.norm_c, torch.nn.LayerNorm)
    assert E3DLSTM.REVISION == 2 and "authors' code" in E3DLSTM.REVISION_NOTE


@pytest.mark.parametrize("code", ["google", "openstl"])
def test_e3d_lstm_plugs_into_stip_end_to_end(code):
    assert MEMORIES["e3d_lstm"] is E3DLSTM
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("e3d_lstm", code=code),
                                     init="default"))
    predictor, _ = build_model(cfg)
    assert all(isinstance(u, E3DLSTM) and u.depth == 2 for u in predictor.memory)
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    for name in E3DLSTM.MAPS:
        assert out.features[name].shape[:3] == (2, cfg.eval_length - 1, cfg.model.num_layers)
    out.predictions.mean().backward()
    assert all(p.grad is not None for p in predictor.memory.parameters())
