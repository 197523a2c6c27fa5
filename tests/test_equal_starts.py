"""Equal starts: every predictor can start as copy-last or from PyTorch's initialisation, chosen by
the one field ``ModelConfig.init``; and the memory-removed control, memory ``"none"``.

Copy-last start (``init="copy_last"``): before any training every prediction is the last given
frame, so the whole rollout (which feeds its predictions back) is copy-last. STIP with MGIR gets
there by initialisation alone (``ModelConfig.copy_route == "recall"``, ``STIP.init_copy_last``);
every other predictor -- STIP without MGIR (Table VII's plain encoder/decoder), STRPM, BeyondMSE --
outputs v_t plus a residual whose last layer starts at zero (``"residual"``).
"""
from dataclasses import replace

import pytest
import torch

from _helpers import tiny
from stipkit.config import ConfigError, ModelConfig, get_preset
from stipkit.config.memories import NoMemoryConfig, memory_config
from stipkit.models import STIP, STRPM, build_model
from stipkit.models.beyondmse import BeyondMSE, beyondmse_config
from stipkit.models.memories import MEMORIES, MemoryStack, NoMemory
from stipkit.reports.ablation_tables import table7_config
from stipkit.training.train import train_step

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CI = get_preset("ci")  # the small STIP preset: STED and MGIR on, init="copy_last"


def _stip(memory: str, mgir: bool):
    """STIP around ``memory``: the ci preset (MGIR on: the recall route) or Table VII's plain
    encoder/decoder (no STED, no MGIR: the residual route), at a tiny size."""
    base = tiny(CI) if mgir else table7_config(tiny(CI), memory)
    return replace(base, model=replace(base.model, memory=memory_config(memory)))


def _predictors() -> dict:
    """Every predictor, small, keyed by a test id (their presets' own ``init`` is replaced)."""
    out = {f"stip-{m}-{route}": _stip(m, mgir)
           for m in MEMORIES for route, mgir in (("recall", True), ("residual", False))}
    out["stip-official"] = tiny(get_preset("ci-official"), hidden=12)  # room for the copy
    out["strpm"] = tiny(get_preset("strpm-ci"))
    out["strpm-official"] = tiny(get_preset("strpm-ci-official"))
    out["strpm-none"] = replace(out["strpm"], model=replace(out["strpm"].model, memory=NoMemoryConfig()))
    bm = beyondmse_config(CI)  # 16x16: three scales (1/4, 1/2, 1), so the pyramid's sum is tested
    out["beyondmse"] = replace(bm, model=replace(bm.model, height=16, width=16, hidden=4, disc_hidden=8))
    return out


PREDICTORS = _predictors()


def _rollout(cfg, init: str, seed: int = 0):
    """(frames, future predictions) of a model built with ``init`` from random weights and inputs:
    ``input_length`` given frames, three predicted."""
    torch.manual_seed(seed)
    predictor, _ = build_model(replace(cfg, model=replace(cfg.model, init=init)))
    m, il = cfg.model, cfg.input_length
    frames = torch.rand(2, il + 3, m.img_channels, m.height, m.width)
    with torch.no_grad():
        out = predictor(frames[:, :il], total_length=il + 3, future_only=True).predictions
    return frames, out


@pytest.mark.parametrize("key", list(PREDICTORS))
def test_copy_last_start_predicts_the_last_frame_at_every_step(key):
    cfg = PREDICTORS[key]
    frames, out = _rollout(cfg, "copy_last")
    last = frames[:, cfg.input_length - 1:cfg.input_length].expand_as(out)
    torch.testing.assert_close(out, last, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", list(PREDICTORS))
def test_default_start_does_not(key):
    cfg = PREDICTORS[key]
    frames, out = _rollout(cfg, "default")
    last = frames[:, cfg.input_length - 1:cfg.input_length].expand_as(out)
    assert (out - last).abs().max() > 1e-2


def test_one_field_names_the_route_for_every_predictor():
    routes = {key: replace(cfg.model, init="copy_last").copy_route for key, cfg in PREDICTORS.items()}
    recall = {f"stip-{m}-recall" for m in MEMORIES} | {"stip-official"}  # STIP with MGIR
    assert {routes[k] for k in recall} == {"recall"}
    assert {routes[k] for k in routes if k not in recall} == {"residual"}
    assert all(replace(cfg.model, init="default").copy_route is None for cfg in PREDICTORS.values())


@pytest.mark.parametrize("key", ["stip-stgru-recall", "stip-official"])
@pytest.mark.parametrize("init", ["copy_last_residual", "copy_last_gated"])
def test_copy_last_residual_takes_the_residual_route_even_with_mgir(key, init):
    """``init="copy_last_residual"``: the same copy-last start as ``"copy_last"``, but STIP with
    MGIR adds its Eq. 4 head to v_t (zero at the start) instead of carrying v_t along the recall."""
    cfg = PREDICTORS[key]
    assert replace(cfg.model, init=init).copy_route == "residual"
    frames, out = _rollout(cfg, init)
    torch.testing.assert_close(out, frames[:, cfg.input_length - 1:cfg.input_length].expand_as(out),
                               atol=1e-6, rtol=0)
    torch.manual_seed(0)
    predictor, _ = build_model(replace(cfg, model=replace(cfg.model, init=init)))
    assert all(h.weight.abs().sum() == 0 for h in predictor.head.values())  # Eq. 4 starts at zero


def test_the_motion_gate_copies_a_still_clip_exactly_whatever_the_weights():
    """``init="copy_last_gated"`` (STIP's MotionGate): v_t + g * r with g = 0 where nothing moved,
    so four copies of a frame in give that frame at every step of the rollout, even with a
    trained (here: random) Eq. 4 head; a moving clip is changed."""
    cfg = PREDICTORS["stip-stgru-recall"]
    torch.manual_seed(0)
    predictor, _ = build_model(replace(cfg, model=replace(cfg.model, init="copy_last_gated")))
    with torch.no_grad():
        for head in predictor.head.values():
            head.weight.normal_()
    m, il = cfg.model, cfg.input_length
    still = torch.rand(2, 1, m.img_channels, m.height, m.width).expand(2, il, -1, -1, -1)
    moving = torch.rand(2, il, m.img_channels, m.height, m.width)
    with torch.no_grad():
        out = predictor(still, total_length=il + 3, future_only=True).predictions
        moved = predictor(moving, total_length=il + 3, future_only=True).predictions
    assert torch.equal(out, still[:, :1].expand_as(out))
    assert (moved - moving[:, -1:]).abs().max() > 1e-2
    with pytest.raises(ConfigError, match=r"ModelConfig\.init='copy_last_gated'.*clip_length >= 2"):
        replace(cfg.model, init="copy_last_gated", clip_length=1)


def test_the_flow_warp_start_is_the_flow_warp_baseline_and_keeps_a_still_clip_still():
    """``init="flow_warp_gated"`` (the kit's): v̂ = W(v_t) + g * r, W(v_t) the last frame warped
    along its Farnebäck flow from v_{t-1}. Before training (r = 0) its first prediction is exactly
    the flow-warp baseline's; a still clip (zero flow, a closed gate) is copied at every step even
    with a random Eq. 4 head; the flow is read on whole frames, so patch must be 1."""
    from stipkit.scoring.baselines import flow_warp_baseline
    cfg = PREDICTORS["stip-stgru-recall"]
    m = replace(cfg.model, init="flow_warp_gated", height=32, width=32)  # room for a flow
    il = cfg.input_length
    torch.manual_seed(0)
    predictor, _ = build_model(replace(cfg, model=m))
    y, x = torch.meshgrid(torch.arange(m.height) * 1.0, torch.arange(m.width) * 1.0, indexing="ij")
    moving = torch.stack([0.5 + 0.4 * torch.sin((x - 2 * k) / 3) * torch.cos(y / 4)
                          for k in range(il + 2)])[None, :, None].expand(2, -1, m.img_channels, -1, -1)
    with torch.no_grad():
        first = predictor(moving[:, :il], total_length=il + 1, future_only=True).predictions
    warped = flow_warp_baseline(moving, il)[:, :1]
    assert (warped - moving[:, il - 1:il]).abs().max() > 0.1  # the pattern moved: not copy-last
    torch.testing.assert_close(first, warped, atol=1e-6, rtol=0)
    with torch.no_grad():
        for head in predictor.head.values():
            head.weight.normal_()
        still = torch.rand(2, 1, m.img_channels, m.height, m.width).expand(2, il, -1, -1, -1)
        out = predictor(still, total_length=il + 3, future_only=True).predictions
    assert torch.equal(out, still[:, :1].expand_as(out))
    with pytest.raises(ConfigError, match=r"ModelConfig\.patch=2.*init='flow_warp_gated'"):
        replace(m, patch=2)


def test_training_from_the_flow_warp_start_is_reproducible(tmp_path):
    """The study preset's start reads Farnebaeck flow (OpenCV, its own threads) at every step:
    two seeded CPU runs of it give the same losses and the same weights, bit for bit."""
    from _helpers import small_config, small_dataset
    from stipkit.training.checkpoint import load_checkpoint
    from stipkit.training.train import train
    cfg = small_config(loss="mse")
    cfg = replace(cfg, model=replace(cfg.model, init="flow_warp_gated"))
    runs = []
    for name in ("a", "b"):
        history = train(cfg, small_dataset(), tmp_path / name, iterations=3, progress=False)
        runs.append((history, load_checkpoint(tmp_path / name / "checkpoint.pt")))
    (ha, ca), (hb, cb) = runs
    assert ha["mse"].tolist() == hb["mse"].tolist()
    wa, wb = ca["predictor"], cb["predictor"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_official_and_reference_presets_keep_pytorchs_init():
    """The official-weights equivalence tests compare against golden fixtures built from PyTorch's
    initialisation: those presets keep ``init="default"``; the small STIP presets start copy-last."""
    for name in ("ci-official", "study-official", "strpm-ci", "strpm-ci-official", "strpm-study",
                 "ucfsport", "strpm-ucfsport-official"):
        assert get_preset(name).model.init == "default", name
    assert beyondmse_config(CI).model.init == "default"
    # the study preset adds the motion gate on the flow-warped last frame (chosen by
    # leave-one-clip-out); ci keeps the plain start
    assert CI.model.init == "copy_last" and get_preset("study").model.init == "flow_warp_gated"


def test_copy_last_is_valid_for_every_predictor_and_bad_values_name_the_field():
    for name in ("strpm", "beyondmse"):  # no longer STIP's alone
        base = PREDICTORS[name].model
        assert replace(base, init="copy_last").copy_route == "residual"
    with pytest.raises(ConfigError, match=r"ModelConfig\.init='copy_first'.*\('default', 'copy_last', "):
        ModelConfig(init="copy_first")
    # genuinely incompatible: STIP's recall route without room for the copied frame
    with pytest.raises(ConfigError, match=r"ModelConfig\.hidden=8 .*init='copy_last' and mgir=True"):
        ModelConfig(height=16, width=16, patch=1, num_downsample=2, hidden=8, init="copy_last")


@pytest.mark.parametrize("key", ["stip-convgru-residual", "strpm", "beyondmse"])
def test_residual_starts_train_every_parameter(key):
    """The zero last layer opens the other paths after one step (a zero-initialised residual
    branch); then a gradient reaches every parameter."""
    cfg = PREDICTORS[key]
    torch.manual_seed(0)
    predictor, _ = build_model(replace(cfg, model=replace(cfg.model, init="copy_last")))
    m, il = cfg.model, cfg.input_length
    frames = torch.rand(2, il + 2, m.img_channels, m.height, m.width)
    opt = torch.optim.SGD(predictor.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        out = predictor(frames, torch.zeros(2, 1), input_length=il).predictions
        torch.nn.functional.mse_loss(out, frames[:, 1:]).backward()
        opt.step()
    for name, p in predictor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


# ------------------------------------------------------------------ Task 2: memory "none"
def test_no_memory_is_the_identity_with_no_state_and_no_parameters():
    unit = NoMemory.from_config(replace(CI.model, memory=NoMemoryConfig()))
    assert MEMORIES["none"] is NoMemory and memory_config("none") == NoMemoryConfig()
    assert sum(p.numel() for p in unit.parameters()) == 0
    stack = MemoryStack(NoMemory.stack(replace(CI.model, memory=NoMemoryConfig())))
    x = torch.rand(1, 4, 2, 2)
    state = stack.init_state(x)
    y, maps = stack(x, state)
    assert y is x and all(s == {} for s in state.units) and maps == [{}] * len(stack)
    assert NoMemory.IN_PAPER_TABLE7 is False and NoMemory.TABLE7_ROW is not None


@pytest.mark.parametrize("key", ["stip-none-recall", "stip-none-residual", "strpm-none"])
def test_without_memory_a_prediction_sees_only_the_current_clip(key):
    """Frames that differ only before the current clip give the same prediction: no temporal
    memory (a real memory, STGRU or RPM, remembers the difference)."""
    cfg = replace(PREDICTORS[key], model=replace(PREDICTORS[key].model, init="default"))
    m, L = cfg.model, cfg.model.clip_length
    a = torch.rand(1, 6, m.img_channels, m.height, m.width)
    b = a.clone()
    b[:, 0] = torch.rand_like(b[:, 0])  # only v_1 differs
    with_memory = replace(cfg, model=replace(m, memory=memory_config("stgru" if m.name == "stip" else "rpm")))
    for c, remembers in ((cfg, False), (with_memory, True)):
        torch.manual_seed(0)
        predictor, _ = build_model(c)
        with torch.no_grad():
            pa, pb = (predictor(x, input_length=5).predictions for x in (a, b))  # all given
        later = slice(L, None)  # predictions from step L + 1 on: their clip no longer holds v_1
        assert torch.equal(pa[:, later], pb[:, later]) != remembers, (c.model.memory, remembers)
    if m.name == "stip":
        assert predictor.merge_t is not None and build_model(cfg)[0].merge_t is None


@pytest.mark.parametrize("key", ["stip-none-recall", "stip-none-residual", "strpm-none"])
def test_without_memory_it_trains_and_rolls_out(key):
    cfg = PREDICTORS[key]
    torch.manual_seed(0)
    predictor, disc = build_model(cfg)
    m = cfg.model
    frames = torch.rand(2, cfg.train_length, m.img_channels, m.height, m.width)
    opt_p = torch.optim.Adam(predictor.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in predictor.parameters()]
    train = replace(cfg.train, loss="mse+gan+lp")
    logs = train_step(frames, predictor, disc, opt_p, opt_d, train, cfg.input_length)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()), logs
    assert any(not torch.equal(x, y) for x, y in zip(before, predictor.parameters()))
    with torch.no_grad():
        out = predictor(frames[:, :cfg.input_length], total_length=cfg.eval_length, return_features=True)
    assert out.predictions.shape == (2, cfg.eval_length - 1, m.img_channels, m.height, m.width)
    assert torch.isfinite(out.predictions).all()
    assert {"T_E", "S_E"} <= set(out.features) and predictor.maps().keys() == {"T_E", "S_E"}
    assert isinstance(predictor, STIP if m.name == "stip" else STRPM)
    assert not isinstance(predictor, BeyondMSE)
