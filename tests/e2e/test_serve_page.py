#!/usr/bin/env python3
"""The chat page of `sdmlm serve` in a real browser (Debian's headless Chromium): `/?q=...` asks a
task prompt on load; the rendered DOM must hold the answer with its verdict badge (HR / not HR),
the probability and the nearest training exemplars, and a screenshot of it is kept
(WORKDIR/page.png, at least 20 kB: a rendered page, not a blank one).
Usage: test_serve_page.py SDMLM_BINARY WORKDIR
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "wordorder-tiny"
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def main() -> int:
    binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("FAIL chromium is not installed (scripts/setup.sh installs Debian's chromium)")
        return 1
    run = lambda *a: subprocess.run([binary, *map(str, a)], capture_output=True, text=True)
    assert run("data", "wordorder", "--sentences", "wordnet", "--seed", 0, "--training_size", 100, "--calibration_size", 200,
               "--test_size", 10, "--shifted_size", 10, "--output", work / "data").returncode == 0
    res = run("verifier", "train", "--model", MODEL, "--data", work / "data", "--max_new_tokens", 64, "--output", work / "verifier")
    assert res.returncode == 0, res.stderr
    prompt = json.loads((work / "data" / "test.jsonl").read_text().splitlines()[0])["prompt"]
    server = subprocess.Popen([binary, "serve", "--model", MODEL, "--verifier", work / "verifier", "--port", "0",
                               "--api_key", "page-key", "--model_name", "tiny"], stderr=subprocess.PIPE, text=True)
    port = int(re.search(r":(\d+)", server.stderr.readline()).group(1))
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health").status == 200:
                break
        except Exception:
            time.sleep(0.05)
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/").read().decode()
    check("the page is self-contained (no external scripts, styles or fonts)",
          "<script src" not in page and "<link" not in page and "http://" not in page and "https://" not in page)
    url = f"http://127.0.0.1:{port}/?key=page-key&q=" + urllib.parse.quote(prompt)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--virtual-time-budget=15000", "--window-size=1000,760", f"--user-data-dir={work / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    shot = subprocess.run([browser, *flags, f"--screenshot={work / 'page.png'}", url], capture_output=True, text=True, timeout=180)
    server.terminate()
    code = server.wait(timeout=30)
    badge = re.search(r'<span class="badge (hr|nothr)" id="badge">([^<]*)</span>', dom)
    check("DOM: the answer card is done", 'data-done="1"' in dom, dom[-800:])
    check("DOM: the answer ends with its verdict", re.search(r"&lt;verified&gt;(Yes|No)&lt;/verified&gt;", dom) is not None, dom[-800:])
    check("DOM: an HR / not-HR badge", badge is not None and badge.group(2) in ("HR", "not HR"), dom[-800:])
    check("DOM: the probability and the nearest training exemplars", "p(Yes) = " in dom and "Nearest training exemplars" in dom
          and dom.count("exemplar ") >= 3, dom[-800:])
    png = work / "page.png"
    check("screenshot written (PNG, > 20 kB)", png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
          and png.stat().st_size > 20000, (shot.returncode, shot.stderr[-300:], png.exists() and png.stat().st_size))
    check("server exits 0 on SIGTERM", code == 0, code)
    print(f"screenshot: {png}")
    print(f"\n{len(failures)} failure(s)" if failures else "\nall passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
