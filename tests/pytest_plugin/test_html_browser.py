"""The HTML report in a real browser: headless Chromium opens it from disk, offline.

The report of four designs and a regression gate is made by pytest itself
(``--crystallize-html``), then opened in headless Chromium, driven over the
DevTools protocol through a pipe (``--remote-debugging-pipe``: the standard
library is enough, no websocket). The page must log no console error, fetch
nothing but itself, and every figure must have rendered: the screenshot's
region of each figure is not blank. The screenshot is kept in the test's
tmp_path, and copied to ``$CRYSTALLIZE_ARTIFACTS`` when that is set.

Without Chromium the test skips and says how to get it; with ``$CI`` set it
fails instead (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_html_report import EXPERIMENTS

#: Where each figure is in the page, in page coordinates, with the page's size.
BOXES = """JSON.stringify({
  width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
  plots: [...document.querySelectorAll("figure.plot")].map(f => {
    const r = f.querySelector("svg").getBoundingClientRect();
    return {name: f.dataset.plot, x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height};
  }),
})"""
WIDTH = 1280
_TRAMPOLINE = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.execv(sys.argv[3], sys.argv[3:])"


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI is set but no Chromium was found: .ci/run installs it (apt-get install -y chromium)")
    pytest.skip("no headless browser for the HTML report test: install Chromium "
                "(Debian/Ubuntu: apt-get install chromium; macOS: brew install --cask chromium)")


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe: JSON messages ending in a NUL byte.

    Lifecycle: started by the constructor, stopped by :meth:`close`. Events
    that arrive while waiting for an answer are kept in :attr:`events`.
    """

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--hide-scrollbars", "--remote-debugging-pipe"]
        # The browser reads commands on fd 3 and writes answers on fd 4: a trampoline puts the pipe ends there.
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(to_browser), str(from_browser), executable, *flags, "about:blank"],
            pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, session: str | None = None, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """Call ``method`` and return its result; raises on a protocol error."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first event ``method`` (one that already arrived, or the next)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._message(deadline))

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
            self.send("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


def _open(browser: DevTools, page: Path) -> tuple[dict[str, Any], bytes]:
    """Load ``page``; return where its figures are and a screenshot of the whole page."""
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        browser.send(f"{domain}.enable", session)
    browser.send("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=900, deviceScaleFactor=1,
                 mobile=False)
    browser.send("Page.navigate", session, url=page.as_uri())
    browser.wait_for("Page.loadEventFired")
    layout = json.loads(browser.send("Runtime.evaluate", session, expression=BOXES, returnByValue=True)
                        ["result"]["value"])
    browser.send("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=layout["height"],
                 deviceScaleFactor=1, mobile=False)
    shot = browser.send("Page.captureScreenshot", session, format="png")["data"]
    return layout, base64.b64decode(shot)


def _problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, and any request for something other than the file itself."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(f"console {params['type']}: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {params.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found.append(f"log error: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:", "about:")):
                found.append(f"fetched from the network: {url}")
    return found


#: An anytime design, for its figure: the always-valid p-value after each replicate against alpha.
ANYTIME = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates="anytime", max_replicates=40, seed=5, params={"gain": 0.0, "stream": 0},
                            treatments=[Treatment("up", {"gain": 1.0, "stream": 1})])
    @hypothesis(metric="score", direction="maximize", test="t_mixture")
    def experiment_anytime(ctx):
        noise = np.random.default_rng((ctx.seed, ctx.get("stream"))).normal(0, 0.5)
        ctx.metrics.add("score", ctx.rng.normal(1 + ctx.get("gain"), 0.5) + noise)
"""


def _report(pytester: pytest.Pytester) -> Path:
    """The report of four designs and a gate against a saved run, written by pytest."""
    pytester.makepyfile(test_designs=EXPERIMENTS, test_anytime=ANYTIME)
    common = ("--crystallize", "-p", "no:xdist", "-p", "no:cacheprovider")
    pytester.runpytest_subprocess(*common, "--crystallize-save=main").assert_outcomes(passed=4)
    pytester.runpytest_subprocess(*common, "--crystallize-gate", "--crystallize-html=report.html").assert_outcomes(
        passed=4)
    return pytester.path / "report.html"


def test_the_report_renders_offline_in_chromium_with_every_figure_drawn(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    from PIL import Image, ImageStat

    executable = _browser()
    page = _report(pytester)
    browser = DevTools(executable, tmp_path / "profile")
    try:
        layout, png = _open(browser, page)
    finally:
        browser.close()
    shot = tmp_path / "report.png"
    shot.write_bytes(png)
    artifacts = os.environ.get("CRYSTALLIZE_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "html-report.png")
        shutil.copy(page, Path(artifacts) / "html-report.html")
    assert _problems(browser.events) == []
    names = [p["name"] for p in layout["plots"]]
    assert {"values:score", "forest:score", "paired:score", "sweep:score", "sequential", "anytime", "gate"} <= set(names)
    assert layout["width"] <= WIDTH  # nothing sticks out sideways
    image = Image.open(shot).convert("L")
    assert image.size == (WIDTH, layout["height"])
    for plot in layout["plots"]:
        assert plot["w"] > 200
        assert plot["h"] > 100, plot
        box = (int(plot["x"]), int(plot["y"]), int(plot["x"] + plot["w"]), int(plot["y"] + plot["h"]))
        region = image.crop(box)
        inked = sum(region.point(lambda v: 255 if v < 200 else 0).histogram()[255:])  # dark pixels: lines, text
        assert ImageStat.Stat(region).stddev[0] > 15, f"figure {plot['name']} looks blank"
        assert inked > 0.01 * region.size[0] * region.size[1], f"figure {plot['name']} has almost no ink"
