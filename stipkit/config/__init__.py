"""Typed configuration: one dataclass per part, presets named after STIP's Table I rows.

A preset name is a Table I row (``ucfsport``, ``human36m``, ``sjtu4k``) or a small CPU
preset (``study``, ``ablation``, ``ci``); append ``-official`` to any of them to switch on every
place where the official STIPHR code departs from the paper (see :class:`ModelConfig` and
:class:`TrainConfig`, fields marked *departure*). Prefix ``strpm-`` for STRPM (CVPR 2022) at
that preset's scale (``strpm-ucfsport-official``: the official STRPM code's departures).

Every check raises :class:`ConfigError` naming the field, its value and the valid range.

SJTU4K frames are 2160x3840, but 2160 is not divisible by patch*2**N = 8*16 = 128.
The official code runs at 2176 lines; stipkit does the same and **pads** 2160-line frames
with 8 edge-replicated rows top and bottom (``stipkit.data.pad_to``); evaluation crops the
predictions back to 2160 lines before computing metrics.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, replace

from .errors import ConfigError, _check
# Every memory's own section lives in stipkit.config.memories (this module uses the few it names).
from .memories import MemoryConfig, NoMemoryConfig, RPMConfig, STGRUConfig, memory_names

GATED = ("copy_last_gated", "flow_warp_gated")  # ModelConfig.init: those with STIP's MotionGate
INITS = ("default", "copy_last", "copy_last_residual", *GATED)
MODELS = ("stip", "strpm", "beyondmse")  # ModelConfig.name: the predictors of stipkit.models.MODELS


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelConfig:
    """The STIP predictor and its discriminator (STIP Sec. III, Tables I-II).

    Paper defaults throughout; fields marked *departure* reproduce the official code.

    ``init``: ``"default"`` (PyTorch's), ``"copy_last"`` (each prediction is the last given frame
    before training: :attr:`copy_route`), ``"copy_last_residual"`` (by the residual route),
    ``"copy_last_gated"`` (gated by motion: ``MotionGate``), ``"flow_warp_gated"`` (on v_t warped).
    """

    name: str = "stip"            # which predictor (stipkit.models.MODELS)
    img_channels: int = 3
    height: int = 64
    width: int = 64
    patch: int = 2                # Table I "Patch": PixelUnshuffle factor
    num_downsample: int = 2       # Table I "4 x DL": stride-2 layers per encoder (N)
    hidden: int = 32              # Table I "Hidden"
    num_layers: int = 4           # Table I "Layers": stacked memory units (K)
    filter_size: int = 5          # Table II hidden layer kernel (padding k//2, see note)
    clip_length: int = 2          # L: frames per encoder input clip (Sec. IV-A)
    recall_weight: float = 0.1    # lambda of Eq. 3
    memory: MemoryConfig = STGRUConfig()  # the predictive memory and its own section
    sted: bool = True             # Table VI: two encoder/decoder paths (True) or one
    mgir: bool = True             # Table VI: multi-grained recall (Eq. 3) on/off
    disc_hidden: int = 64         # Table I "Hidden" for the discriminator
    init: str = "default"         # one of INITS: "default" (PyTorch's, the official code's) | "copy_last" | ...
    # --- departures of the official code (paper value is the default) ---
    swap_decoder_states: bool = False  # official decodes T^N with the *spatial* decoder
    recall_deepest: bool = True        # official never recalls the deepest level (l=1)
    last_upsample_act: bool = True     # official: no LeakyReLU after the last UL
    clip_padding: str = "replicate"    # official pads the first clips with zero frames
    disc_activation: str = "leaky_relu"  # official discriminator uses ReLU

    def __post_init__(self) -> None:
        for name in ("img_channels", "height", "width", "patch", "hidden", "num_layers",
                     "filter_size", "clip_length", "disc_hidden"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v > 0, f"ModelConfig.{name}", v, "must be a positive integer")
        _check(isinstance(self.num_downsample, int) and self.num_downsample >= 1,
               "ModelConfig.num_downsample", self.num_downsample, "must be an integer >= 1")
        _check(self.filter_size % 2 == 1, "ModelConfig.filter_size", self.filter_size,
               "must be odd so that 'same' padding keeps the size (e.g. 3 or 5)")
        unit = self.patch * 2 ** self.num_downsample
        for name in ("height", "width"):
            v = getattr(self, name)
            if v % unit:
                lo, hi = (v // unit) * unit, (v // unit + 1) * unit
                raise ConfigError(
                    f"ModelConfig.{name}={v} is invalid: must be divisible by "
                    f"patch*2**num_downsample = {self.patch}*2**{self.num_downsample} = {unit} "
                    f"(nearest valid: {lo or unit} or {hi})")
        _check(self.recall_weight >= 0, "ModelConfig.recall_weight", self.recall_weight, "must be >= 0")
        _check(self.name in MODELS, "ModelConfig.name", self.name, f"must be one of {MODELS}")
        _check(isinstance(self.memory, MemoryConfig) and type(self.memory) is not MemoryConfig,
               "ModelConfig.memory", self.memory, "must be a memory section, e.g. "
               f"stipkit.config.memories.memory_config(name) with name one of {memory_names()}")
        _check(self.clip_padding in ("replicate", "zeros"), "ModelConfig.clip_padding",
               self.clip_padding, "must be 'replicate' (paper) or 'zeros' (official)")
        _check(self.disc_activation in ("leaky_relu", "relu"), "ModelConfig.disc_activation",
               self.disc_activation, "must be 'leaky_relu' (paper) or 'relu' (official)")
        _check(self.init in INITS, "ModelConfig.init", self.init, f"must be one of {INITS}")
        _check(self.init not in GATED or (self.name == "stip" and self.clip_length >= 2),
               "ModelConfig.init", self.init, "needs name='stip' and clip_length >= 2 (v_t - v_{t-1})")
        _check(self.init != "flow_warp_gated" or self.patch == 1, "ModelConfig.patch", self.patch,
               "must be 1 with init='flow_warp_gated' (the flow is read on whole frames)")
        if self.copy_route == "recall":  # STIP with MGIR: the copy rides the recall (Eq. 3)
            alt = "; or mgir=False, where STIP starts copy-last through a zero residual instead"
            for ok, name, value, why in (
                    (self.recall_weight > 0, "recall_weight", self.recall_weight, "> 0 (the recall carries the copy)"),
                    (self.num_downsample >= 2, "num_downsample", self.num_downsample, ">= 2"),
                    (4 * self.frame_channels <= self.hidden, "hidden", self.hidden,
                     f">= 4 * img_channels * patch**2 = {4 * self.frame_channels} (room for the "
                     "copied frame's 2x2 space-to-depth)")):
                _check(ok, f"ModelConfig.{name}", value,
                       f"must be {why} when init='copy_last' and mgir=True{alt}")
        _check(self.disc_hidden % 4 == 0, "ModelConfig.disc_hidden", self.disc_hidden,
               "must be divisible by 4 (GroupNorm(4), Table II)")
        if self.name == "strpm":  # STRPM: three encoders/decoders around RPMs, no recall
            for ok, name, value, why in (
                    (isinstance(self.memory, (RPMConfig, NoMemoryConfig)), "memory", self.memory,
                     "an RPMConfig, or NoMemoryConfig() (memory 'none': no RPM stack)"),
                    (self.sted, "sted", self.sted, "True (without STED, STRPM Table 3's 'RPM' is "
                     "name='stip' with sted=False, mgir=False and memory=RPMConfig())"),
                    (not self.mgir, "mgir", self.mgir, "False (STRPM has no multi-grained recall)")):
                _check(ok, f"ModelConfig.{name}", value, f"must be {why} when name='strpm'")

    @property
    def copy_route(self) -> str | None:
        """How the predictor starts as copy-last, v̂_{t+1} = v_t before training (None: ``init``
        is ``"default"``). ``"recall"``: STIP with MGIR, by initialisation alone
        (``STIP.init_copy_last``; needs recall_weight > 0, num_downsample >= 2, hidden >=
        4 * img_channels * patch**2). ``"residual"`` (every other predictor, and any with
        ``init="copy_last_residual"``): it outputs v_t + r, the last layer (making r) zero at the
        start; each model's docstring says which layer and which equation."""
        if self.init == "default":
            return None
        return "recall" if self.init == "copy_last" and self.name == "stip" and self.mgir else "residual"

    @property
    def frame_channels(self) -> int:
        """Channels after patching: C * patch**2 (Table I "Patch")."""
        return self.img_channels * self.patch ** 2

    @property
    def latent_size(self) -> tuple[int, int]:
        """Spatial size of the memory states: (H, W) / (patch * 2**N)."""
        unit = self.patch * 2 ** self.num_downsample
        return self.height // unit, self.width // unit

    @property
    def disc_layers(self) -> int:
        """Number of stride-2 discriminator layers: floor(log2(H/patch)) (Table I: 8)."""
        return int(math.log2(self.height // self.patch))


LOSS_MODES = ("mse", "mse+gan", "mse+gan+lp", "gdl+gan")  # Table VIII, BeyondMSE; the one list of loss-mode names
# The one list of dataset names: the kit's own (embedded clips, Moving Digits) and the papers'.
PAPER_DATASETS = ("ucfsport", "human36m", "sjtu4k")
DATASETS = ("embedded", "digits", *PAPER_DATASETS)
LR_SCHEDULES = ("exponential", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Alg. 1 and Eq. 8-10 hyper-parameters."""

    batch_size: int = 8
    iterations: int = 1800        # study: 8-9.5 min on 2 CPU cores
    lr: float = 1e-3              # official: 5e-3 (predictor)
    lr_d: float = 5e-4            # official: 5e-4 (discriminator)
    # Adam's epsilon (PyTorch's); the benchmark's copy-last start: 1e-16 (ablation.COPY_LAST_ADAM_EPS)
    adam_eps: float = 1e-8
    lr_schedule: str = "exponential"  # official: x lr_decay every decay_interval | "cosine"
    lr_decay: float = 0.9         # exponential: the factor, applied every decay_interval
    decay_interval: int = 2000
    decay_start: int = 0          # official decays only after sampling_stop_iter
    warmup: int = 0               # iterations of linear learning-rate warm-up (0: none)
    loss: str = "mse+gan+lp"      # Table VIII modes
    gamma_gan: float = 0.01       # gamma_1 of Eq. 9 (Table I)
    gamma_lp: float = 0.001       # gamma_2 of Eq. 9 (Table I)
    gamma_gdl: float = 1.0        # lambda_gdl of BeyondMSE's loss (mode "gdl+gan")
    gan_reduction: str = "frame"  # departure: official averages D's probabilities over time
    scheduled_sampling: bool = True
    sampling_start: float = 1.0
    sampling_stop_iter: int = 1000
    sampling_rate: float = 1e-3   # eta decrement per iteration (official: 5e-5)
    grad_clip: float | None = None
    ema: float = 0.0              # decay of a moving average of the weights (0: none kept)
    seed: int = 0
    # more training windows from the embedded clips (stipkit.data.EmbeddedVideo); the other
    # datasets have their own lists (paper data) or draw new sequences anyway (Moving Digits)
    crops: int = 1                # crop positions per window across the whole frame (1: center)
    flips: bool = False           # add the left-right mirror of every window
    reverse: bool = False         # add every window played backwards
    still_every: int = 0          # make one training window in N still (stipkit.data.still; 0: none)
    # early stopping on the validation split (stipkit.training.train.train's eval_fn): stop after
    # ``patience`` evaluations without a better ``select`` score (0: train every iteration); the
    # best-scoring weights are kept in the checkpoint either way and are what load_predictor gives
    patience: int = 0
    min_iterations: int = 0       # never stop early before this many (a copy-last start plateaus)
    select: str = "psnr_mean"     # the eval_fn key maximised (higher is better)

    def __post_init__(self) -> None:
        for name in ("batch_size", "decay_interval", "crops"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v > 0, f"TrainConfig.{name}", v, "must be a positive integer")
        for name in ("iterations", "sampling_stop_iter", "decay_start", "warmup", "patience",
                     "min_iterations"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 0, f"TrainConfig.{name}", v, "must be an integer >= 0")
        for name in ("lr", "lr_d", "adam_eps"):
            v = getattr(self, name)
            _check(v > 0, f"TrainConfig.{name}", v, "must be > 0")
        _check(0 < self.lr_decay <= 1, "TrainConfig.lr_decay", self.lr_decay, "must be in (0, 1]")
        _check(self.lr_schedule in LR_SCHEDULES, "TrainConfig.lr_schedule", self.lr_schedule,
               f"must be one of {LR_SCHEDULES}")
        _check(self.loss in LOSS_MODES, "TrainConfig.loss", self.loss, f"must be one of {LOSS_MODES}")
        for name in ("gamma_gan", "gamma_lp", "gamma_gdl", "sampling_rate"):
            v = getattr(self, name)
            _check(v >= 0, f"TrainConfig.{name}", v, "must be >= 0")
        _check(self.gan_reduction in ("frame", "clip_mean"), "TrainConfig.gan_reduction",
               self.gan_reduction, "must be 'frame' (paper, Eq. 10) or 'clip_mean' (official)")
        _check(0 <= self.sampling_start <= 1, "TrainConfig.sampling_start", self.sampling_start,
               "must be in [0, 1]")
        _check(0 <= self.ema < 1, "TrainConfig.ema", self.ema,
               "must be in [0, 1) (0: no weight average; e.g. 0.995)")
        _check(self.grad_clip is None or self.grad_clip > 0, "TrainConfig.grad_clip",
               self.grad_clip, "must be None or > 0")
        _check(isinstance(self.still_every, int) and (self.still_every == 0 or self.still_every >= 2),
               "TrainConfig.still_every", self.still_every,
               "must be 0 (no still windows) or an integer >= 2 (one window in N made still)")
        _check(isinstance(self.select, str) and bool(self.select), "TrainConfig.select",
               self.select, "must be the name of a score returned by train()'s eval_fn, "
               "e.g. 'psnr_mean'")


@dataclass(frozen=True)
class Config:
    """A whole experiment: model, training and the sequence lengths of Table I."""

    name: str = "study"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    input_length: int = 4         # Table I: 4 given frames
    train_length: int = 5         # frames per training window (Table I "4 -> 1" means 5)
    eval_length: int = 10         # frames per test window (Table I "4 -> 6" means 10)
    dataset: str = "embedded"

    def __post_init__(self) -> None:
        _check(isinstance(self.input_length, int) and self.input_length >= 1,
               "Config.input_length", self.input_length, "must be an integer >= 1")
        for name in ("train_length", "eval_length"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v > self.input_length, f"Config.{name}", v,
                   f"must be an integer > input_length={self.input_length} "
                   "(at least one frame to predict)")
        _check(self.dataset in DATASETS, "Config.dataset", self.dataset, f"must be one of {DATASETS}")


def _official(cfg: Config) -> Config:
    """Switch on every departure of the official STIPHR code (and its training values)."""
    memory = cfg.model.memory
    if isinstance(memory, STGRUConfig):
        memory = replace(memory, update_bias=1.0)
    model = replace(cfg.model, memory=memory, swap_decoder_states=True,
                    recall_deepest=False, last_upsample_act=False, clip_padding="zeros",
                    disc_activation="relu", init="default")  # official: PyTorch's init
    # Official trainer: loss = l2 + 0.01*LP + 0.001*GAN (as Alg. 1 line 23, the reverse
    # of Eq. 9 and Table I); D's probabilities are averaged over time before the BCE.
    train = replace(cfg.train, gamma_gan=cfg.train.gamma_lp, gamma_lp=cfg.train.gamma_gan,
                    gan_reduction="clip_mean", loss="mse+gan+lp")
    # Official configs train over the whole test window (total_length 10 / 8) with scheduled
    # sampling and the loss on every predicted frame; Table I says "Train 4 -> 1".
    return replace(cfg, name=cfg.name + "-official", model=model, train=train,
                   train_length=cfg.eval_length)


def _table1(name, height, width, patch, gamma_gan, gamma_lp, eval_length, sampling_stop,
            sampling_rate, dataset) -> Config:
    return Config(
        name=name,
        model=ModelConfig(height=height, width=width, patch=patch, num_downsample=4,
                          hidden=64, num_layers=16, recall_weight=0.1, disc_hidden=64),
        train=TrainConfig(batch_size=1, iterations=100_000, lr=5e-3, lr_d=5e-4, lr_decay=0.9,
                          decay_interval=2000, decay_start=sampling_stop, gamma_gan=gamma_gan,
                          gamma_lp=gamma_lp, sampling_stop_iter=sampling_stop,
                          sampling_rate=sampling_rate),
        input_length=4, train_length=5, eval_length=eval_length, dataset=dataset)


# The study preset (issue 8): Table I's structure at 64x64, with the changes that make it learn
# on a CPU -- patch 1 and three stride-2 layers (the finest recall holds 2.7x the frame's values;
# the memory stays 8x8), the copy-last start, warm-up and cosine decay, more windows from the same
# clips (crops, mirrors, reversed), a moving average of the weights, MSE only (Alg. 1's GAN and
# LP terms: +30 % time per iteration for +0.5 dB at 1000 iterations, row gan_lp of bench_levers.py;
# the ``-official`` presets keep them). docs/study.md measures each.
_STUDY_MODEL = ModelConfig(height=64, width=64, patch=1, num_downsample=3, hidden=32, num_layers=4,
                           init="copy_last")
_STUDY_TRAIN = TrainConfig(batch_size=8, iterations=3000, lr=1e-3, lr_schedule="cosine", warmup=300,
                           ema=0.995, crops=5, flips=True, reverse=True, loss="mse")


def _presets() -> dict[str, Config]:
    return {
        # Table I rows (paper scale; GPUs).
        "ucfsport": _table1("ucfsport", 512, 512, 2, 0.010, 0.0010, 10, 20_000, 5e-5, "ucfsport"),
        "human36m": _table1("human36m", 1024, 1024, 4, 0.010, 0.0010, 8, 50_000, 2e-5, "human36m"),
        "sjtu4k": _table1("sjtu4k", 2176, 3840, 8, 0.005, 0.0005, 8, 20_000, 5e-5, "sjtu4k"),
        # Small CPU presets. study: 64x64, 4 STGRUs of 32 channels, 4 -> 1 training, 4 -> 6
        # testing, sized and tuned to learn on a 2-core CPU in minutes (notebook 03 and
        # benchmarks/bench_levers.py measure each choice); ci: the same, tiny, ungated.
        # the recipe chosen on validation (benchmarks/bench_levers.py): one training window in eight
        # still, 4 -> 3 training on its own predictions (row rollout_7; sampled over the run's first
        # half), the motion gate on the flow-warped last frame (row flow_gated), 1000 iterations
        "study": Config(name="study", model=replace(_STUDY_MODEL, init="flow_warp_gated"), train_length=7,
                        train=replace(_STUDY_TRAIN, iterations=1000, still_every=8,
                                      sampling_stop_iter=500, sampling_rate=1 / 500)),
        # ablation: the scale of the ablation zoo (Tables VI-VIII, notebooks 04-06), where each
        # variant is trained for 3 seeds on 2 datasets on a 2-core CPU: the study preset's
        # choices at 32x32, 3 units of 16 channels, 150 iterations of batch 4 (about a minute a
        # run on one core: 102 runs make Tables VI-VIII with 3 seeds on 2 datasets).
        "ablation": Config(name="ablation",
                           model=replace(_STUDY_MODEL, height=32, width=32, num_downsample=2,
                                         hidden=16, num_layers=3, disc_hidden=16),
                           train=replace(_STUDY_TRAIN, batch_size=4, iterations=150, lr=2e-3,
                                         warmup=15, ema=0.95, sampling_stop_iter=150)),
        # ablation64: the benchmark's scale (budget "benchmark"): the ablation preset at 64x64
        # (three stride-2 layers, so the memory runs at 8x8 as in the study preset); its runs
        # are stopped on the validation split rather than cut at a fixed length
        "ablation64": Config(name="ablation64",
                             model=replace(_STUDY_MODEL, hidden=16, num_layers=3, disc_hidden=16),
                             train=replace(_STUDY_TRAIN, batch_size=4, iterations=3000, lr=1e-3,
                                           warmup=50, ema=0.98, sampling_stop_iter=150)),
        "ci": Config(name="ci", model=replace(_STUDY_MODEL, height=32, width=32, num_downsample=2,
                                              hidden=12, num_layers=2, disc_hidden=8),
                     train=replace(_STUDY_TRAIN, batch_size=2, iterations=4, warmup=2, ema=0.5,
                                   crops=2, sampling_stop_iter=2),
                     input_length=2, train_length=4, eval_length=4),
    }


# STRPM (Chang et al., CVPR 2022) at a preset's scale: "strpm-<preset>". At the Table I rows, its
# Sec. 4: 16 RPMs of 128 channels, 5x5 kernels, tau = theta = 5, a discriminator of 128 channels,
# lambda_1 (LP) / lambda_2 (GAN) = 0.01 / 0.001 (0.005 / 0.0005 on SJTU4K); where the paper is
# silent, the official configs: patch 8, sr_size 4 / 8 / 16 (the number of stride-2 layers),
# lr 5e-4 and 5e-5 (D), SJTU4K 40,000 iterations. The small presets keep their own scale.
_STRPM_SR = {"ucfsport": 2, "human36m": 3, "sjtu4k": 4}  # log2(sr_size)


def _strpm(cfg: Config) -> Config:
    model = replace(cfg.model, name="strpm", clip_length=1, memory=RPMConfig(), sted=True,
                    mgir=False, init="default")
    train = cfg.train
    if cfg.dataset in _STRPM_SR:
        model = replace(model, hidden=128, num_layers=16, filter_size=5, disc_hidden=128, patch=8,
                        num_downsample=_STRPM_SR[cfg.dataset])
        lp, gan = (0.005, 0.0005) if cfg.dataset == "sjtu4k" else (0.01, 0.001)
        train = replace(train, lr=5e-4, lr_d=5e-5, gamma_lp=lp, gamma_gan=gan, loss="mse+gan+lp",
                        iterations=40_000 if cfg.dataset == "sjtu4k" else train.iterations)
    return replace(cfg, name="strpm-" + cfg.name, model=model, train=train)


def _strpm_official(cfg: Config) -> Config:
    """Switch on every departure of the official STRPM code (stipkit.reports.departures.strpm_departures)."""
    # attention="conv", the official merge, is also the paper's and the default: not a departure
    memory = replace(cfg.model.memory, attention="conv", temporal_states="repeat_last",
                     spatial_states="zigzag", stif_gate=True, decode_gate=True, forget_bias=1.0,
                     theta=cfg.model.memory.tau)  # one window length (tau) for both
    disc = 64 if cfg.dataset in _STRPM_SR else cfg.model.disc_hidden  # official D_num_hidden
    model = replace(cfg.model, memory=memory, disc_activation="relu", disc_hidden=disc)
    # Official trainer: MSE + 0.01 LP + 0.001 GAN on every dataset (the paper: 0.005 / 0.0005 on
    # SJTU4K), D's probabilities averaged over time, training over the whole test window.
    train = replace(cfg.train, loss="mse+gan+lp", gamma_lp=0.01, gamma_gan=0.001,
                    gan_reduction="clip_mean")
    return replace(cfg, name=cfg.name + "-official", model=model, train=train,
                   train_length=cfg.eval_length)


def preset_names() -> list[str]:
    base = sorted(_presets())
    base = base + ["strpm-" + n for n in base]
    return base + [n + "-official" for n in base]


def get_preset(name: str, **overrides) -> Config:
    """Return the named preset, optionally with top-level field overrides.

    ``get_preset("ucfsport-official")`` applies every official-code departure.
    """
    presets = _presets()
    base, official = (name[: -len("-official")], True) if name.endswith("-official") else (name, False)
    base, strpm = (base[len("strpm-"):], True) if base.startswith("strpm-") else (base, False)
    if base not in presets:
        raise ConfigError(f"preset={name!r} is unknown: valid presets are {preset_names()}")
    cfg = _strpm(presets[base]) if strpm else presets[base]
    if official:
        cfg = _strpm_official(cfg) if strpm else _official(cfg)
    return replace(cfg, **overrides) if overrides else cfg


def to_dict(cfg) -> dict:
    """A plain, JSON-able dict (stored in checkpoints); a memory section is ``{"name": ...,
    **its fields}``."""
    d = dataclasses.asdict(cfg)
    model = d.get("model") if isinstance(cfg, Config) else (d if isinstance(cfg, ModelConfig) else None)
    if model is not None:
        memory = cfg.model.memory if isinstance(cfg, Config) else cfg.memory
        model["memory"] = {"name": memory.name, **dataclasses.asdict(memory)}
    return d


def _upgrade_model(data: dict) -> dict:
    """Model sections written before the memory sections (stipkit 0.1 checkpoints): ``memory``
    was a name and STGRU's ``update_gate_bias`` a field of the model; they convert."""
    data = dict(data)
    if isinstance(data.get("memory"), str) or "update_gate_bias" in data:
        name = data.get("memory", "stgru")
        if name != "stgru" and "update_gate_bias" in data:
            raise ConfigError(f"Config.model has update_gate_bias (an STGRU field) but memory={name!r}")
        section = {"update_bias": data.pop("update_gate_bias")} if "update_gate_bias" in data else {}
        data["memory"] = {"name": name, **section}
    return data


def from_dict(d: dict) -> Config:
    """Inverse of :func:`to_dict`; unknown keys raise :class:`ConfigError` naming them. Configs
    of older stipkit checkpoints convert (:func:`_upgrade_model`)."""
    def build(cls, data, where):
        if not isinstance(data, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"{where} has unknown field(s) {unknown}; valid: {sorted(known)}")
        return cls(**data)

    def build_memory(data):
        if not isinstance(data, dict) or "name" not in data:
            raise ConfigError(f"Config.model.memory must be a mapping with a 'name', got {data!r}")
        data = dict(data)
        name = data.pop("name")
        if name not in MemoryConfig.registry:
            raise ConfigError(f"Config.model.memory.name={name!r} is invalid: must be one of "
                              f"{memory_names()}")
        cls = MemoryConfig.registry[name]
        return build(cls, data, f"Config.model.memory ({cls.__name__})")

    if not isinstance(d, dict):
        raise ConfigError(f"Config must be a mapping, got {type(d).__name__}")
    kw = dict(d)
    if "model" in kw:
        model = _upgrade_model(kw["model"]) if isinstance(kw["model"], dict) else kw["model"]
        if isinstance(model, dict) and "memory" in model:
            model = {**model, "memory": build_memory(model["memory"])}
        kw["model"] = build(ModelConfig, model, "Config.model")
    if "train" in kw:
        kw["train"] = build(TrainConfig, kw["train"], "Config.train")
    return build(Config, kw, "Config")
