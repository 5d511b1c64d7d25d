"""The web front end driven as a user drives it: `interactive-adapt serve` in its own process, and Debian's
Chromium (headless, through Selenium with the system driver: nothing is downloaded) clicking on the page.

Used by the browser tests (Testing/web/) and the latency benchmark (`interactive-adapt bench-web`).
Clicks are real browser pointer events at absolute page coordinates; what the user sees is read from
the page (the views' frames, the status line); what the server did is read from its JSON-lines event
log (`--event-log`). Each server gets a free port and a bounded lifetime (`--exit-after`).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM = Path("/usr/bin/chromium")  # Debian packages chromium and chromium-driver (scripts/setup.sh)
CHROMEDRIVER = Path("/usr/bin/chromedriver")
VIEW_NAMES = ("Red", "Green", "Yellow")  # axial, coronal, sagittal: their order on the page
# Chromium's own background traffic is refused by a closed network: switch it off.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-device-scale-factor=1",
)


def require_browser() -> None:
    """Fail with what to do when Chromium or Selenium is missing (the set-up installs both)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the Python package selenium")
    if missing:
        raise RuntimeError(f"{', '.join(missing)} missing: run `make setup` (it installs the browser).")


def write_zeros_nrrd(path: Path, size_ijk: tuple[int, int, int]) -> Path:
    """A study that is large once read and small on disk: an attached NRRD of 8-bit zeros of `size_ijk`
    (I, J, K), gzip-encoded (above 1 GiB, the same gzip member of 1 GiB of zeros repeated: ~1 MB a GiB)."""

    def gzip_zeros(count: int, level: int) -> bytes:  # one gzip member
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        block, parts, left = bytes(min(count, 1 << 24)), [], count
        while left:
            parts.append(compressor.compress(block[: min(left, len(block))]))
            left -= min(left, len(block))
        return b"".join(parts) + compressor.flush()

    whole, rest = divmod(int(np.prod(size_ijk)), 1 << 30)
    data = (gzip_zeros(1 << 30, 9) * whole if whole else b"") + (gzip_zeros(rest, 1) if rest else b"")
    header = (
        "NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {' '.join(map(str, size_ijk))}\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
        "space origin: (0,0,0)\nencoding: gzip\n\n"
    )
    path.write_bytes(header.encode() + data)
    return path


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    """`interactive-adapt serve` in a child process, with its event log; stops itself after `exit_after_s`.

    The studies folder is `studies`, else the study's folder, else `folder/studies` (made empty). `url` is
    the address the server printed, with its token (what a user copies into the browser)."""

    def __init__(
        self,
        folder: Path,
        study: Path | None = None,
        site: str = "Browser test",
        exit_after_s: float = 600,
        args: tuple[str, ...] = (),
        studies: Path | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if studies is None and study is None:
            studies = self.folder / "studies"
            studies.mkdir(exist_ok=True)
        self.studies = Path(studies) if studies is not None else Path(study).resolve().parent
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.event_log = self.folder / f"events-{self.port}.jsonl"
        self.store = self.folder / "store"
        command = [sys.executable, "-m", "InteractiveAdaptLib.cli", "serve", "--port", str(self.port)]
        command += ["--site", site, "--root", str(self.store), "--device", "cpu"]
        command += ["--exit-after", str(exit_after_s), "--event-log", str(self.event_log), *args]
        if studies is not None:
            command += ["--studies", str(studies)]
        if study is not None:
            command.append(str(study))
        env = {**os.environ, "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow"}
        self.output = open(self.folder / f"server-{self.port}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT, env=env)
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The page's address with its token, as the server printed it (waits for it, up to 120 s)."""
        deadline = time.monotonic() + 120
        while self._url is None:
            found = re.search(r"(http://\S+/\?secret=\S+)", self.log_tail(lines=100_000))
            if found:
                self._url = found.group(1)
            elif self.process.poll() is not None:
                raise RuntimeError(f"The server stopped (exit {self.process.returncode}): {self.log_tail()}")
            elif time.monotonic() > deadline:
                raise TimeoutError(f"The server printed no address. Server log: {self.log_tail()}")
            else:
                time.sleep(0.1)
        return self._url

    @property
    def token(self) -> str:
        return self.url.rsplit("secret=", 1)[1]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        if not self.event_log.exists():
            return []
        lines = self.event_log.read_text().splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if name is None or e["event"] == name]

    def wait_event(
        self,
        name: str,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
        after: int = 0,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """The first event `name` (from the `after`-th event of the log on) for which `where` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events()[after:]:
                if event["event"] == name and where(event):
                    return event
            if self.process.poll() is not None:
                raise RuntimeError(f"The server stopped (exit {self.process.returncode}): {self.log_tail()}")
            time.sleep(0.02)
        raise TimeoutError(f"No '{name}' event within {timeout} s. Server log: {self.log_tail()}")

    def views(self) -> dict[str, dict[str, Any]]:
        """The newest geometry the server reported for each view ('view' events), by view name."""
        return {event["name"]: event for event in self.events("view")}

    def log_tail(self, lines: int = 30) -> str:
        self.output.flush()
        return "\n".join((self.folder / f"server-{self.port}.log").read_text().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()

    def __enter__(self) -> ServedApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Keeps every frame view `index` shows after the next pointerdown on it (with its time). `__iaMaskTime()`
# then returns the ms from that pointerdown to the first kept frame that shows at least 90 % of what the
# click finally changed: the pixels farther than `radius` from the click (the point's own marker is
# smaller) that differ between the frame before the click and the last frame. -1 when fewer than
# `minPixels` changed (no visible change).
_WATCH_FRAMES = """
const [index, x, y, radius, minPixels] = arguments;
const img = document.querySelectorAll('#ia-views img')[index];
const area = img.closest('.remote-controlled-area');
const canvas = document.createElement('canvas');
const ctx = canvas.getContext('2d', {willReadFrequently: true});
const pixels = () => {
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, canvas.width, canvas.height).data;
};
const before = pixels();
const width = canvas.width, height = canvas.height;
const frames = [];
let t0 = null;
area.addEventListener('pointerdown', () => { t0 = performance.now(); }, {capture: true, once: true});
const onFrame = () => { if (t0 !== null) frames.push([performance.now() - t0, pixels()]); };
img.addEventListener('load', onFrame);
const differs = (a, p) => Math.abs(a[p] - before[p]) + Math.abs(a[p + 1] - before[p + 1]) + Math.abs(a[p + 2] - before[p + 2]) > 60;
window.__iaMaskTime = () => {
  img.removeEventListener('load', onFrame);
  if (!frames.length) return -1;
  const last = frames[frames.length - 1][1];
  const changed = [];
  for (let row = 0; row < height; row++) {
    for (let col = 0; col < width; col++) {
      if ((col - x) ** 2 + (row - y) ** 2 <= radius * radius) continue;
      const p = 4 * (row * width + col);
      if (differs(last, p)) changed.push(p);
    }
  }
  if (changed.length < minPixels) return -1;
  window.__iaTrace = [performance.timeOrigin + t0];  // pointerdown (epoch ms), then [ms, shown, changed]
  for (const [t, data] of frames) {
    let n = 0;
    for (const p of changed) { if (differs(data, p)) n++; }
    window.__iaTrace.push([Math.round(t), n, changed.length]);
  }
  for (const [t, data] of frames) {
    let n = 0;
    for (const p of changed) { if (differs(data, p)) n++; }
    if (n >= 0.9 * changed.length) return t;
  }
  return -1;
};
"""


class BrowserPage:
    """A headless Chromium window on the page (private profile, fixed size)."""

    def __init__(self, url: str, width: int = 1400, height: int = 900) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        self._profile = tempfile.TemporaryDirectory(prefix="ia-chromium-")
        for flag in (
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self._profile.name}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_script_timeout(60)
        self.driver.get(url)

    def close(self) -> None:
        self.driver.quit()
        self._profile.cleanup()

    def __enter__(self) -> BrowserPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ the panel

    def element(self, element_id: str, timeout: float = 30) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.ID, element_id))
        )

    def press(self, element_id: str, timeout: float = 30) -> None:
        """Click a button once it is enabled."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(
            expected_conditions.element_to_be_clickable((By.ID, element_id))
        ).click()

    def type(self, element_id: str, text: str, enter: bool = False) -> None:
        from selenium.webdriver.common.keys import Keys

        field = self.element(element_id)
        field = field if field.tag_name == "input" else field.find_element("css selector", "input")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        field.send_keys(text + (Keys.ENTER if enter else ""))

    def key(self, *keys: str) -> None:
        """Keys typed on the page (not in a text field), e.g. key('p') or key(Keys.CONTROL, 'z')."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        ActionChains(self.driver).send_keys(Keys.ESCAPE).perform()  # close an open list
        self.driver.execute_script("document.activeElement && document.activeElement.blur();")
        chain = ActionChains(self.driver)
        for k in keys[:-1]:
            chain.key_down(k)
        chain.send_keys(keys[-1])
        for k in reversed(keys[:-1]):
            chain.key_up(k)
        chain.perform()

    def choose(self, element_id: str, item: str) -> None:
        """Open a drop-down list and choose the entry whose text starts with `item`."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.element(element_id).find_element(By.XPATH, "./ancestor::div[contains(@class,'v-field')]").click()
        entries = "//div[contains(@class,'v-overlay-container')]//div[contains(@class,'v-list-item-title')]"
        WebDriverWait(self.driver, 30).until(
            lambda d: [e for e in d.find_elements(By.XPATH, entries) if e.text.startswith(item)]
        )[0].click()

    def open_study(self, name: str, refresh: bool = False, series: str | None = None) -> None:
        """Choose study `name` in the page's list (after Refresh, for a study added since) and open it."""
        if refresh:
            self.press("ia-refresh-studies")
        self.choose("ia-study", name)
        if series is not None:
            self.choose("ia-series", series)
        self.press("ia-open")

    def wait_class(self, element_id: str, css_class: str, timeout: float = 30) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(
            lambda d: css_class in (self.element(element_id).get_attribute("class") or "")
        )

    def wait_gone(self, element_id: str, timeout: float = 60) -> None:
        """Wait until the page has no element `element_id` (e.g. the progress line when work ended)."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(lambda d: not d.find_elements("id", element_id))

    def text(self, element_id: str) -> str:
        return self.element(element_id).text

    def wait_text(self, element_id: str, contains: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.text(element_id)
            except Exception:  # re-rendered while read
                text = ""
            if contains.lower() in text.lower():
                return text
            time.sleep(0.05)
        raise TimeoutError(f"'{element_id}' never said '{contains}' (it says '{text}').")

    def screenshot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))

    # ------------------------------------------------------------ the views

    def wait_views(self, timeout: float = 60) -> list[tuple[int, int]]:
        """Wait until the three views stream frames of their real size (the first are placeholders)."""
        deadline = time.monotonic() + timeout
        sizes: list[Any] = []
        while time.monotonic() < deadline:
            sizes = self.driver.execute_script(
                "return Array.from(document.querySelectorAll('#ia-views img')).map(e => "
                "[e.naturalWidth, e.naturalHeight, Math.round(e.getBoundingClientRect().width)])"
            )
            if len(sizes) == 3 and all(w > 0 and abs(w - shown) <= 1 for w, _, shown in sizes):
                return [(w, h) for w, h, _ in sizes]
            time.sleep(0.1)
        raise TimeoutError(f"The views never showed full-size frames (sizes {sizes}).")

    def page_xy(self, index: int, view_xy: tuple[float, float]) -> tuple[float, float]:
        """Page coordinates of a view pixel (VTK display coordinates: origin bottom left)."""
        left, top, width, natural_w, natural_h = self.driver.execute_script(
            "const e = document.querySelectorAll('#ia-views img')[arguments[0]];"
            "const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, e.naturalWidth, e.naturalHeight];",
            index,
        )
        scale = width / natural_w
        return left + (view_xy[0] + 0.5) * scale, top + (natural_h - view_xy[1] - 0.5) * scale

    def click_view(self, index: int, view_xy: tuple[float, float]) -> None:
        """A left click (press and release, no movement) on a view pixel, at absolute page coordinates."""
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        x, y = self.page_xy(index, view_xy)
        actions = ActionBuilder(self.driver, duration=0)
        actions.pointer_action.move_to_location(round(x), round(y)).click()
        actions.perform()

    def frame(self, index: int) -> np.ndarray:
        """The frame the view shows now, (rows, cols, 3) uint8, top row first."""
        import matplotlib.image

        data = self.driver.execute_script(
            "const e = document.querySelectorAll('#ia-views img')[arguments[0]];"
            "const c = document.createElement('canvas'); c.width = e.naturalWidth; c.height = e.naturalHeight;"
            "c.getContext('2d').drawImage(e, 0, 0); return c.toDataURL('image/png');",
            index,
        )
        image = matplotlib.image.imread(io.BytesIO(base64.b64decode(data.split(",", 1)[1])), format="png")
        return (np.asarray(image)[..., :3] * 255).round().astype(np.uint8)

    def timed_click(
        self,
        index: int,
        view_xy: tuple[float, float],
        settled: Callable[[], object],
        radius: int = 14,
        min_pixels: int = 20,
    ) -> float:
        """Click a view pixel, wait for `settled()` (the server finished the click's work), and return the
        ms from the browser's pointerdown to the first frame showing the click's change of the segment,
        measured in the page; -1 when the click changed too little to see (see _WATCH_FRAMES)."""
        height = self.driver.execute_script(
            "return document.querySelectorAll('#ia-views img')[arguments[0]].naturalHeight;", index
        )
        self.driver.execute_script(
            _WATCH_FRAMES, index, view_xy[0], height - 1 - view_xy[1], radius, min_pixels
        )
        self.click_view(index, view_xy)
        settled()
        time.sleep(0.3)  # the last frame reaches the page
        wait = float(self.driver.execute_script("return window.__iaMaskTime();"))
        self.last_trace = self.driver.execute_script("return window.__iaTrace || null;")
        return wait


def ras_to_view_xy(view_event: dict[str, Any], ras: np.ndarray) -> tuple[float, float]:
    """The view pixel (display coordinates) showing world point `ras`, from the server's 'view' event."""
    xy_to_ras = np.asarray(view_event["xy_to_ras"], float)
    x, y, _, _ = np.linalg.inv(xy_to_ras) @ np.append(np.asarray(ras, float), 1.0)
    width, height = view_event["size"]
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"RAS {ras} is outside the view ({x:.0f}, {y:.0f} of {width} x {height}).")
    return float(x), float(y)


def view_mask(
    view_event: dict[str, Any], labels: np.ndarray, ijk_to_ras: np.ndarray, label: int
) -> np.ndarray:
    """Where a view shows voxels of `label` (a (K, J, I) label volume with its IJK->RAS): a (y, x) mask
    over the view's pixels in display coordinates (row 0 = bottom), nearest voxel."""
    width, height = view_event["size"]
    ys, xs = np.mgrid[0:height, 0:width]
    xy = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size), np.ones(xs.size)])
    ras = np.asarray(view_event["xy_to_ras"], float) @ xy
    ijk = np.rint(np.linalg.inv(ijk_to_ras) @ ras)[:3].astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(labels.shape[::-1])[:, None]), axis=0)
    found = np.zeros(xs.size, bool)
    found[inside] = labels[ijk[2, inside], ijk[1, inside], ijk[0, inside]] == label
    return found.reshape(height, width)


def structure_target(app: ServedApp, atlas: Any, view: str, label: int) -> tuple[float, float]:
    """Where a clinician clicks atlas structure `label` in `view` (Red, Green, Yellow): its deepest pixel.
    `atlas` is a label Volume on the grid of the open image."""
    mask = view_mask(app.views()[view], atlas.array, atlas.ijk_to_ras, label)
    if mask.sum() <= 50:
        raise ValueError(f"The {view} view does not show structure {label} ({mask.sum()} pixels).")
    return click_target(mask)


def changed_pixels(before: np.ndarray, after: np.ndarray) -> int:
    """Pixels of two frames that differ by more than JPEG noise."""
    return int((np.abs(after.astype(int) - before.astype(int)).sum(axis=-1) > 60).sum())


def click_target(mask: np.ndarray) -> tuple[float, float]:
    """Where a clinician clicks a structure in a view: its deepest pixel, as (x, y) display coordinates."""
    from InteractiveAdaptLib.engine.click_simulation import deepest_point

    row, col = deepest_point(mask)
    return float(col), float(row)
