"""The Fig. 5 gate explorer of notebook 07 in a real browser: JupyterLab + headless Chromium.

What a user does: ``jupyter lab``, open notebook 07, run it, move a slider of the explorer and see
the map change. This test does the same: it starts JupyterLab on a free localhost port (a random
token, temporary config / runtime / settings / workspace folders, ``STIPKIT_BUDGET=ci`` so the
kernel is fast), opens a copy of the notebook in headless Chromium driven by Playwright (the
system ``chromium``; Playwright's own browser download is not used), runs all cells from Lab's
Run menu, waits for the explorer's image, presses ArrowRight on the first slider of the explorer
that can move, and checks that the image's PNG bytes and the pixels on screen both changed.

Nothing here depends on slider labels or map names: the explorer is the cell output holding
ipywidgets sliders (``.widget-slider``) and the image is the largest ``<img>`` in it.

The notebook is copied into a temporary folder without its outputs and saved widget state (so
that whatever image appears comes from the live kernel) and autosave is off; Lab serves only
that folder, so the file in notebooks/ is out of its reach. The server (and with it the kernel) is shut down in the
fixture's teardown; leftover child processes are killed. Every wait has a deadline: the whole
test is bounded by ``DEADLINE_S``.

Without chromium or playwright the test skips, naming what is missing -- unless
``STIPKIT_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where it fails instead.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "07_visualise_gates.ipynb"
REQUIRE_ENV = "STIPKIT_REQUIRE_BROWSER"
CHROMIUM_ENV = "STIPKIT_CHROMIUM"
DEADLINE_S = 240  # the whole test, server start to teardown (typically well under half of it)


# --------------------------------------------------------------------------- prerequisites
def _unavailable(reason: str):
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the browser test must run here)")
    pytest.skip(f"{reason}; `apt-get install chromium` and `pip install playwright` to run it")


def _chromium() -> str:
    chosen = os.environ.get(CHROMIUM_ENV)
    candidates = [chosen] if chosen else ["chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    _unavailable(f"no Chromium found (tried {', '.join(candidates)}; or set {CHROMIUM_ENV})")


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"playwright is not importable ({e})")
    return sync_playwright


class Deadline:
    """Seconds left of one overall budget; each wait takes the smaller of its own and this."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the browser test ran past its {DEADLINE_S} s deadline")
        return left if cap is None else min(left, cap)

    def ms(self, cap: float) -> float:
        return 1000 * self.left(cap)


# --------------------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(folder: Path) -> None:
    """User settings of a throwaway Lab: no autosave, every cell in the DOM, no news toast."""
    files = {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                        "checkForUpdates": False},
    }
    for name, value in files.items():
        path = folder / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def _fresh_copy(src: Path, dst: Path) -> None:
    """The notebook without outputs, execution counts or saved widget state."""
    nb = json.loads(src.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    dst.write_text(json.dumps(nb, indent=1))


class Lab:
    def __init__(self, root: Path, deadline: Deadline):
        self.root, self.deadline = root, deadline
        self.port, self.token = _free_port(), uuid.uuid4().hex
        self.log = root.parent / "jupyterlab.log"
        home = root.parent
        for sub in ("config", "runtime", "data", "settings", "workspaces", "ipython"):
            (home / sub).mkdir()
        _settings(home / "settings")
        (home / "config" / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}}}))  # not needed here
        env = dict(os.environ, STIPKIT_BUDGET="ci", PYTHONUNBUFFERED="1",
                   JUPYTER_CONFIG_DIR=str(home / "config"),
                   JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                   JUPYTER_DATA_DIR=str(home / "data"),
                   JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
                   IPYTHONDIR=str(home / "ipython"))
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
               "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               # if this process dies without its teardown, the server still goes away
               "--MappingKernelManager.cull_idle_timeout=300",
               "--MappingKernelManager.cull_interval=60",
               "--ServerApp.shutdown_no_activity_timeout=300"]
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def api(self, path: str, method: str = "GET", timeout: float = 5):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def wait_ready(self, cap: float = 90) -> None:
        end = time.monotonic() + self.deadline.left(cap)
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                self.api("status", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        raise TimeoutError(f"jupyter lab did not answer within {cap} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Shut the kernels and the server down; kill what is left of what it started."""
        try:
            import psutil
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except Exception:  # psutil missing or the server gone already
            children = []
        if self.proc.poll() is None:
            try:
                self.api("shutdown", method="POST", timeout=5)  # stops the kernels too
            except (OSError, urllib.error.URLError):
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with _suppress():
                    os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    with _suppress():
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
        for child in children:  # the kernel runs in a session of its own
            with _suppress():
                if child.is_running():
                    child.kill()
        self._log_file.close()


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and not issubclass(exc[0], KeyboardInterrupt)


@pytest.fixture
def browser_tools():
    """(playwright's sync_playwright, the Chromium executable), checked before any server starts."""
    return _playwright(), _chromium()


@pytest.fixture
def lab(browser_tools, tmp_path):
    deadline = Deadline(DEADLINE_S)
    root = tmp_path / "root"
    root.mkdir()
    _fresh_copy(NOTEBOOK, root / NOTEBOOK.name)
    server = Lab(root, deadline)
    assert NOTEBOOK.parent not in root.parents
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- the page
IMAGE_BYTES_JS = """async (img) => {
    const r = await fetch(img.src);
    const b = new Uint8Array(await r.arrayBuffer());
    let s = '';
    for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
    return btoa(s);
}"""

# the largest loaded <img> of the first cell output that holds ipywidgets sliders
EXPLORER_IMAGE_JS = """() => {
    const outs = [...document.querySelectorAll('.jp-Cell .jp-OutputArea')]
        .filter(o => o.querySelector('.widget-slider'));
    if (!outs.length) return null;
    const imgs = [...outs[0].querySelectorAll('img')]
        .filter(i => i.complete && i.naturalWidth > 0)
        .sort((a, b) => b.naturalWidth * b.naturalHeight - a.naturalWidth * a.naturalHeight);
    return imgs.length ? imgs[0] : null;
}"""

ERRORS_JS = """() => [...document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.innerText).join('\\n---\\n')"""


def _explorer_image(page):
    handle = page.evaluate_handle(EXPLORER_IMAGE_JS)
    return handle.as_element()


def _image_digest(page, img) -> str:
    return hashlib.sha256(base64.b64decode(page.evaluate(IMAGE_BYTES_JS, img))).hexdigest()


def _wait_kernel_idle(server: Lab, deadline: Deadline, cap: float) -> None:
    end = time.monotonic() + deadline.left(cap)
    while time.monotonic() < end:
        kernels = server.api("kernels")
        if kernels and all(k.get("execution_state") == "idle" for k in kernels):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no idle kernel within {cap} s: {server.api('kernels')}\n{server.log_tail()}")


def test_gate_explorer_slider_redraws_in_jupyterlab(browser_tools, lab, tmp_path):
    deadline = lab.deadline
    t0, times = time.monotonic(), {}

    def mark(phase):
        times[phase] = round(time.monotonic() - t0, 1)

    sync_playwright, chromium = browser_tools
    shot = tmp_path / "failure.png"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
                                    timeout=deadline.ms(60))
        try:
            mark("browser up")
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(deadline.ms(60))
            try:
                page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?reset&token={lab.token}",
                          timeout=deadline.ms(90))
                page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=deadline.ms(90))
                mark("notebook shown")
                _wait_kernel_idle(lab, deadline, 90)
                mark("kernel idle")

                # Run > Run All Cells, as a user would
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^\s*Run\s*$")).click()
                page.locator(".lm-Menu-itemLabel",
                             has_text=re.compile(r"^\s*Run All Cells\s*$")).click()

                # the explorer's image from the live kernel
                try:
                    page.wait_for_function(f"() => !!({EXPLORER_IMAGE_JS})()",
                                           timeout=deadline.ms(150), polling=500)
                except Exception as e:
                    raise AssertionError(
                        f"the explorer's image did not render ({type(e).__name__}); cell errors:\n"
                        f"{page.evaluate(ERRORS_JS)[-3000:]}\nserver log:\n{lab.log_tail()}") from e
                mark("explorer rendered")
                img = _explorer_image(page)
                img.scroll_into_view_if_needed()
                digest_before = _image_digest(page, img)
                pixels_before = img.screenshot()

                # the first slider of the explorer that can move one step right
                explorer = page.locator(".jp-Cell .jp-OutputArea",
                                        has=page.locator(".widget-slider")).first
                handles = explorer.locator(".widget-slider [role=slider]")
                n = handles.count()
                assert n, "the explorer shows no slider"
                slider = None
                for i in range(n):
                    h = handles.nth(i)
                    now, top = (float(h.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemax"))
                    if now < top:
                        slider = h
                        break
                assert slider is not None, f"none of the explorer's {n} sliders can move"
                slider.focus()
                slider.press("ArrowRight")
                page.wait_for_function(
                    "([h, v]) => parseFloat(h.getAttribute('aria-valuenow')) > v",
                    arg=[slider.element_handle(), now], timeout=deadline.ms(10))

                mark("slider moved")
                # the kernel redraws: new PNG bytes, new pixels on screen
                end = time.monotonic() + deadline.left(90)
                digest_after = digest_before
                while time.monotonic() < end:
                    img = _explorer_image(page)
                    if img is not None:
                        digest_after = _image_digest(page, img)
                        if digest_after != digest_before:
                            break
                    time.sleep(0.5)
                assert digest_after != digest_before, (
                    "moving the slider did not change the explorer's image; cell errors:\n"
                    f"{page.evaluate(ERRORS_JS)[-3000:]}")
                end = time.monotonic() + deadline.left(20)  # the new PNG may still be decoding
                pixels_after = pixels_before
                while time.monotonic() < end and pixels_after == pixels_before:
                    img = _explorer_image(page)
                    if img is not None:
                        img.scroll_into_view_if_needed()
                        pixels_after = img.screenshot()
                    else:
                        time.sleep(0.3)
                assert pixels_after != pixels_before, "the image's bytes changed but not its pixels"
                mark("image changed")
            except BaseException:
                try:
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"page at failure: {shot}")
                except Exception:
                    pass
                raise
        finally:
            browser.close()
            print(f"browser test phases (s since the server answered): {times}")
