"""Load the official STIPHR and STRPM checkpoints (github ZhengChang467/STIPHR, /STRPM) into stipkit.

STRPM: :func:`load_strpm` and :func:`load_strpm_discriminator` have the same contract as the STIPHR
loaders below (frames (B, T, C, H, W) in [0, 1] in, predictions (B, T-1, C, H, W) out, equal to
the official code's for the same weights and an all-zero sampling mask); the model is
:class:`~stipkit.models.STRPM` with every departure of the official STRPM code switched on
(``strpm-*-official``). Its conversion renames (the official ``decoder_t`` holds ``m_decoder*``
layers and feeds ``c_srcnn``), permutes the patch channels of the input- and output-side
weights as below, and reports every cell's ``conv_sto`` above the bottom one (never used: those
cells take their identity branch) in ``model.official_unused``.

STIPHR:

``load_stiphr(state_dict, official_args)`` takes the ``net_param`` entry of ``model_pm.ckpt`` and
the official argument values, and returns a :class:`~stipkit.models.STIP` built with every
departure of the official code switched on, whose ``forward(frames).predictions`` equal the
official outputs (un-patched) for frames (B, T, C, H, W) in [0, 1] and an all-zero sampling mask.

What the conversion does (each a layout difference, not a change of the function):

* Patching: the official ``reshape_patch`` orders patch channels (row, col, colour); PyTorch's
  PixelUnshuffle orders them (colour, row, col). Input-side weights are permuted accordingly, and
  so are the output rows of the head.
* The encoders' Conv3d with kernel (L, 1, 1) becomes a 1x1 Conv2d over the L stacked frames.
* ``merge_t`` concatenates [T, T_E] officially and [T_E, T] here (Alg. 1 line 7's order).
* The official output is ``conv_last_sr([s_srcnn(.), t_srcnn(.)])``: three 1x1 convolutions
  that compose to one; they are folded into the Eq. 4 convolution ``head`` (split by stream).
* Unused official parameters (``merge``, every cell's ``conv_last``) are ignored and reported
  in ``model.official_unused``.

The official loaders read frames with OpenCV, i.e. in **BGR** order: feed BGR frames to match
its checkpoints (``stipkit.data`` has ``channel_order="bgr"``). Use ``weights_only=True`` when
reading a checkpoint: ``torch.load(path, map_location="cpu", weights_only=True)["net_param"]``.
"""
from __future__ import annotations

import math

import torch

from dataclasses import replace

from ..config import ModelConfig, get_preset
from . import STIP, Discriminator, build_predictor

REQUIRED_ARGS = ("img_height", "img_width", "img_channel", "patch_size", "sr_size", "num_layers",
                 "num_hidden", "filter_size", "time", "time_stride", "input_length",
                 "total_length", "alpha")


class OfficialFormatError(ValueError):
    """The state dict or arguments do not match the official STIPHR layout."""


def patch_permutation(channels: int, patch: int) -> torch.Tensor:
    """perm[u] = official channel index for PixelUnshuffle channel u = c*p*p + i*p + j."""
    perm = torch.empty(channels * patch * patch, dtype=torch.long)
    for c in range(channels):
        for i in range(patch):
            for j in range(patch):
                perm[c * patch * patch + i * patch + j] = (i * patch + j) * channels + c
    return perm


def official_model_config(args: dict) -> ModelConfig:
    """The ModelConfig (with the ``-official`` departures) for the official argument values."""
    missing = [k for k in REQUIRED_ARGS if k not in args]
    if missing:
        raise OfficialFormatError(f"official_args is missing {missing}; required: {list(REQUIRED_ARGS)}")
    sr = int(args["sr_size"])
    if sr < 2 or sr & (sr - 1):
        raise OfficialFormatError(f"official_args['sr_size']={sr} must be a power of two >= 2")
    hidden = args["num_hidden"]
    if isinstance(hidden, (list, tuple)):
        if len(set(hidden)) != 1:
            raise OfficialFormatError(f"official_args['num_hidden']={hidden}: only equal widths are supported")
        hidden = hidden[0]
    fs = args["filter_size"]
    if isinstance(fs, (list, tuple)):
        if len(set(fs)) != 1:
            raise OfficialFormatError(f"official_args['filter_size']={fs}: only square kernels are supported")
        fs = fs[0]
    if int(args["time"]) - int(args["time_stride"]) != 1:
        raise OfficialFormatError(
            f"official_args time={args['time']}, time_stride={args['time_stride']}: the official "
            "forward only runs with time - time_stride == 1 (a clip every step)")
    departures = get_preset("study-official").model
    fields = {k: getattr(departures, k) for k in (
        "memory", "swap_decoder_states", "recall_deepest", "last_upsample_act",
        "clip_padding", "disc_activation")}
    return ModelConfig(img_channels=int(args["img_channel"]), height=int(args["img_height"]),
                       width=int(args["img_width"]), patch=int(args["patch_size"]),
                       num_downsample=int(math.log2(sr)), hidden=int(hidden),
                       num_layers=int(args["num_layers"]), filter_size=int(fs),
                       clip_length=int(args["time"]), recall_weight=float(args["alpha"]),
                       disc_hidden=int(args.get("D_num_hidden", 64)), **fields)


def _take(sd: dict, key: str, shape: tuple | None = None) -> torch.Tensor:
    if key not in sd:
        raise OfficialFormatError(f"official state dict has no {key!r} (is this a STIPHR model_pm "
                                  f"'net_param' entry?)")
    v = sd.pop(key)
    if shape is not None and tuple(v.shape) != tuple(shape):
        raise OfficialFormatError(f"official {key!r} has shape {tuple(v.shape)}, expected {tuple(shape)} "
                                  "for these official_args")
    return v.detach().to(torch.float64)


def convert_stiphr(state_dict: dict, cfg: ModelConfig) -> tuple[dict, list[str]]:
    """Official STIPHR predictor state dict -> stipkit STIP state dict (+ the unused keys)."""
    sd = dict(state_dict)
    h, c, L, n, p = cfg.hidden, cfg.frame_channels, cfg.clip_length, cfg.num_downsample, cfg.patch
    perm = patch_permutation(cfg.img_channels, p)
    new = {}
    for k in ("t", "s"):
        w = _take(sd, f"{k}_encoder3d.encoder3d_{k}_conv-1.weight", (h, c, L, 1, 1))
        new[f"encoders.{k}.clip.weight"] = w[:, perm, :, 0, 0].permute(0, 2, 1).reshape(h, L * c, 1, 1)
        new[f"encoders.{k}.clip.bias"] = _take(sd, f"{k}_encoder3d.encoder3d_{k}_conv-1.bias", (h,))
        for i in range(n):
            for part in ("weight", "bias"):
                new[f"encoders.{k}.down.{i}.{part}"] = _take(sd, f"{k}_encoders.{i}.encoder_{k}{i}.{part}")
                new[f"decoders.{k}.up.{i}.{part}"] = _take(sd, f"{k}_decoders.{i}.{k}_decoder{i}.{part}")
    w = _take(sd, "merge_t.weight", (h, 2 * h, 1, 1))
    new["merge_t.weight"] = torch.cat([w[:, h:], w[:, :h]], 1)  # [T, T_E] -> [T_E, T]
    new["merge_t.bias"] = _take(sd, "merge_t.bias")
    for k in range(cfg.num_layers):
        for src, dst in (("conv_t.0", "conv_t"), ("conv_t.1", "norm_t"),
                         ("conv_s.0", "conv_s"), ("conv_s.1", "norm_s")):
            for part in ("weight", "bias"):
                new[f"memory.{k}.{dst}.{part}"] = _take(sd, f"cell_list.{k}.{src}.{part}")
    # Fold conv_last_sr([s_srcnn(out_s), t_srcnn(out_t)]) into one 1x1 conv on [T_D, S_D].
    last_w = _take(sd, "conv_last_sr.weight", (c, 2 * c, 1, 1))[:, :, 0, 0]
    last_b = _take(sd, "conv_last_sr.bias", (c,))
    a_s, b_s = _take(sd, "s_srcnn.0.weight", (c, h, 1, 1))[:, :, 0, 0], _take(sd, "s_srcnn.0.bias")
    a_t, b_t = _take(sd, "t_srcnn.0.weight", (c, h, 1, 1))[:, :, 0, 0], _take(sd, "t_srcnn.0.bias")
    w_head = torch.cat([last_w[:, c:] @ a_t, last_w[:, :c] @ a_s], 1)   # [dec_t, dec_s] inputs
    b_head = last_w[:, :c] @ b_s + last_w[:, c:] @ b_t + last_b
    w_head = w_head[perm]
    new["head.t.weight"] = w_head[:, :h].reshape(c, h, 1, 1)
    new["head.s.weight"] = w_head[:, h:].reshape(c, h, 1, 1)
    new["head.t.bias"] = b_head[perm]
    unused = sorted(k for k in sd if k.startswith("merge.") or ".conv_last." in k)
    leftover = sorted(set(sd) - set(unused))
    if leftover:
        raise OfficialFormatError(f"official state dict has keys stipkit does not know: {leftover[:8]}"
                                  f"{' ...' if len(leftover) > 8 else ''}")
    return {k: v.float() for k, v in new.items()}, unused


def load_stiphr(state_dict: dict, official_args: dict) -> STIP:
    """An official STIPHR predictor (``net_param`` of model_pm.ckpt) as a stipkit STIP module."""
    return _load_predictor(state_dict, official_args, official_model_config(official_args), convert_stiphr)


def _load_predictor(state_dict: dict, official_args: dict, cfg: ModelConfig, convert):
    """The predictor of ``cfg`` with the official weights (``convert(state_dict, cfg)``) loaded."""
    if int(official_args["total_length"]) <= int(official_args["input_length"]):
        raise OfficialFormatError("official_args total_length must exceed input_length")
    model = build_predictor(cfg, input_length=int(official_args["input_length"]))
    new, unused = convert(state_dict, cfg)
    _load_strict(model, new)
    model.official_unused = unused
    return model.eval()


def convert_stiphr_discriminator(state_dict: dict, cfg: ModelConfig) -> dict:
    """Official STIPHR discriminator state dict (Discriminator.py / Discriminator_4k.py) -> stipkit."""
    sd = {k: v.detach().to(torch.float64) for k, v in state_dict.items()}
    perm = patch_permutation(cfg.img_channels, cfg.patch)
    new = {}
    names = [("main.0", "main.1")] + [(f"main.conv_{i}", f"main.gn_{i}") for i in range(1, cfg.disc_layers)]
    for i, (conv, gn) in enumerate(names):
        for src, dst in ((conv, f"features.{3 * i}"), (gn, f"features.{3 * i + 1}")):
            for part in ("weight", "bias"):
                key = f"{src}.{part}"
                if key not in sd:
                    raise OfficialFormatError(f"official discriminator state dict has no {key!r}: "
                                              f"expected {cfg.disc_layers} conv layers for these args")
                new[f"{dst}.{part}"] = sd.pop(key)
    new["features.0.weight"] = new["features.0.weight"][:, perm]
    for part in ("weight", "bias"):
        key = f"linear.0.{part}"
        if key not in sd:
            raise OfficialFormatError(f"official discriminator state dict has no {key!r}")
        new[f"fc.{part}"] = sd.pop(key)
    if sd:
        raise OfficialFormatError(f"official discriminator state dict has unknown keys {sorted(sd)[:8]}")
    return {k: v.float() for k, v in new.items()}


def load_stiphr_discriminator(state_dict: dict, official_args: dict) -> Discriminator:
    """An official STIPHR discriminator (``net_param`` of model_d.ckpt) as a stipkit module.

    Its forward returns per-frame logits (B, T); the official module ends in a sigmoid and
    returns the probabilities' mean over time -- ``torch.sigmoid(logits).mean(1)`` -- and the
    same features (B, T, F).
    """
    return _load_discriminator(state_dict, official_args, official_model_config)


def _load_discriminator(state_dict: dict, official_args: dict, config_of) -> Discriminator:
    """The discriminator of ``config_of(args)`` (its width read from the weights when the args
    do not give it) with the official weights loaded; STIPHR and STRPM share its layout."""
    args = dict(official_args)
    if "D_num_hidden" not in args and "main.0.weight" in state_dict:
        args["D_num_hidden"] = int(state_dict["main.0.weight"].shape[0])
    cfg = config_of(args)
    disc = Discriminator(cfg)
    _load_strict(disc, convert_stiphr_discriminator(state_dict, cfg))
    return disc.eval()


def _load_strict(module: torch.nn.Module, new: dict) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(new))
    if missing:
        raise OfficialFormatError(f"conversion left parameters unset: {missing[:8]}")
    for k, v in new.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise OfficialFormatError(f"official weight for {k} has shape {tuple(v.shape)}, the model built "
                                      f"from official_args needs {tuple(own[k].shape)}: do the args match "
                                      "the checkpoint?")
    module.load_state_dict(new)


# ----------------------------------------------------------------------------- STRPM
STRPM_ARGS = ("img_height", "img_width", "img_channel", "patch_size", "sr_size", "num_layers",
              "num_hidden", "filter_size", "tau", "input_length", "total_length")


def _one(args: dict, key: str) -> int:
    v = args[key]
    if isinstance(v, (list, tuple)):
        if len(set(v)) != 1:
            raise OfficialFormatError(f"official_args[{key!r}]={v}: only equal values are supported")
        v = v[0]
    return int(v)


def official_strpm_config(args: dict) -> ModelConfig:
    """The ModelConfig of :class:`~stipkit.models.STRPM`, official departures on, for the
    official STRPM argument values (``configs/*_configs.py``)."""
    missing = [k for k in STRPM_ARGS if k not in args]
    if missing:
        raise OfficialFormatError(f"official_args is missing {missing}; required: {list(STRPM_ARGS)}")
    sr = int(args["sr_size"])
    if sr < 2 or sr & (sr - 1):
        raise OfficialFormatError(f"official_args['sr_size']={sr} must be a power of two >= 2")
    if int(args.get("stride", 1)) != 1:
        raise OfficialFormatError(f"official_args['stride']={args['stride']}: only stride 1 is supported")
    tau = int(args["tau"])
    official = get_preset("strpm-ci-official").model
    return replace(official, img_channels=int(args["img_channel"]), height=int(args["img_height"]),
                   width=int(args["img_width"]), patch=int(args["patch_size"]),
                   num_downsample=int(math.log2(sr)), hidden=_one(args, "num_hidden"),
                   num_layers=int(args["num_layers"]), filter_size=_one(args, "filter_size"),
                   clip_length=1, memory=replace(official.memory, tau=tau, theta=tau),
                   disc_hidden=int(args.get("D_num_hidden", 64)))


def convert_strpm(state_dict: dict, cfg: ModelConfig) -> tuple[dict, list[str]]:
    """Official STRPM predictor state dict -> stipkit STRPM state dict (+ the unused keys)."""
    sd = dict(state_dict)
    h, c, n, p = cfg.hidden, cfg.frame_channels, cfg.num_downsample, cfg.patch
    perm = patch_permutation(cfg.img_channels, p)
    new = {}
    for k, dec, srcnn in (("t", "m_decoder", "c_srcnn"), ("s", "c_decoder", "m_srcnn"),
                          ("o", "o_decoder", "o_srcnn")):
        w = _take(sd, f"encoder_{k}.encoder_{k}_conv-1.weight", (h, c, 1, 1))
        new[f"encoders.{k}.clip.weight"] = w[:, perm]
        new[f"encoders.{k}.clip.bias"] = _take(sd, f"encoder_{k}.encoder_{k}_conv-1.bias", (h,))
        for i in range(n):
            for part in ("weight", "bias"):
                new[f"encoders.{k}.down.{i}.{part}"] = _take(sd, f"encoder_{k}.encoder_{k}{i}.{part}")
                new[f"decoders.{k}.up.{i}.{part}"] = _take(sd, f"decoder_{k}.{dec}{i}.{part}")
        new[f"to_frame.{k}.weight"] = _take(sd, f"{srcnn}.0.weight", (c, h, 1, 1))[perm]
        new[f"to_frame.{k}.bias"] = _take(sd, f"{srcnn}.0.bias", (c,))[perm]
    w = _take(sd, "conv_last_sr.weight", (c, 2 * c, 1, 1))
    new["head.weight"] = w[perm][:, torch.cat([perm, c + perm])]
    new["head.bias"] = _take(sd, "conv_last_sr.bias", (c,))[perm]
    names = {"en_t": "conv_t", "en_s": "conv_s", "en_o": "conv_o", "conv_h": "conv_h",
             "conv_m": "conv_m", "conv_o": "conv_ts", "att_c": "att_t", "att_m": "att_s"}
    for k in range(cfg.num_layers):
        for src, dst in names.items():
            for i in ("0", "1"):
                for part in ("weight", "bias"):
                    new[f"memory.{k}.{dst}.{i}.{part}"] = _take(sd, f"cell_list.{k}.{src}.{i}.{part}")
        for part in ("weight", "bias"):
            new[f"memory.{k}.conv_last.{part}"] = _take(sd, f"cell_list.{k}.conv_last.{part}")
        if k == 0:
            for part in ("weight", "bias"):
                new[f"memory.0.conv_stif.{part}"] = _take(sd, f"cell_list.0.conv_sto.{part}")
    unused = sorted(k for k in sd if k.startswith("cell_list.") and ".conv_sto." in k)
    leftover = sorted(set(sd) - set(unused))
    if leftover:
        raise OfficialFormatError(f"official STRPM state dict has keys stipkit does not know: "
                                  f"{leftover[:8]}{' ...' if len(leftover) > 8 else ''}")
    return {k: v.float() for k, v in new.items()}, unused


def load_strpm(state_dict: dict, official_args: dict):
    """An official STRPM predictor (``net_param`` of model_pm.ckpt) as a stipkit STRPM module."""
    return _load_predictor(state_dict, official_args, official_strpm_config(official_args), convert_strpm)


def load_strpm_discriminator(state_dict: dict, official_args: dict) -> Discriminator:
    """An official STRPM discriminator (``core/models/Discriminator.py``, the same layout as
    STIPHR's) as a stipkit module; forward returns per-frame probabilities (B, T): the official
    module returns their mean over time."""
    return _load_discriminator(state_dict, official_args, official_strpm_config)
