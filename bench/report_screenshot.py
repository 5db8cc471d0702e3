"""Regenerate docs/report-screenshot.png: the examples' HTML report, photographed by headless Chromium.

    python bench/report_screenshot.py                           # the sweep example
    python bench/report_screenshot.py --example game --height 1400

Runs ``pytest --crystallize --crystallize-html=...`` on one folder of
``examples/`` (needs the ``dev`` extra), opens the report from disk in
headless Chromium (``chromium`` on the PATH, or ``--browser``) and saves the
top of the page (``--height`` pixels) as a PNG.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="llm_sweep", help="the folder under examples/ to run")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2250)
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        report, shot = Path(tmp) / "report.html", Path(tmp) / "shot.png"
        subprocess.run([sys.executable, "-m", "pytest", "--crystallize", f"--crystallize-html={report}", "-q",
                        "-p", "no:cacheprovider", f"examples/{args.example}"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([args.browser, *FLAGS, f"--user-data-dir={tmp}/profile",
                        f"--window-size={args.width},{args.height}", f"--screenshot={shot}",
                        report.as_uri()],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
        image = Image.open(shot).convert("RGB")
        image.save(args.output, optimize=True)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
