"""The report of ``deeplandscape demo`` opened in a real browser: headless Chromium (Debian's ``chromium``
package).

The report is served over HTTP on localhost; a wrapper page loads it in an iframe (same origin, so the
wrapper may read it) and writes into its own DOM, once the report has loaded, whether every ``<img>``
decoded (``naturalWidth > 0``; a control image that does not exist must read as not decoded), the HTTP
status of every relative link, whether every ``#anchor`` names an element, and the headings.
``chromium --dump-dom`` prints that DOM. Without Chromium this test fails (``make browser`` installs it),
unless ``DEEPLANDSCAPE_SKIP_BROWSER=1``.
"""

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from deeplandscape.cli import main

WRAPPER = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<pre id="out">pending</pre><img id="control" src="runs/no-such-figure.png">
<iframe id="report" src="runs/report.html" width="1000" height="800"></iframe>
<script>
const loaded = (i) => i.complete && i.naturalWidth > 0;
document.getElementById("report").addEventListener("load", async () => {
  const page = document.getElementById("report").contentDocument;
  const images = [...page.images].map((i) => ({src: i.getAttribute("src"), ok: loaded(i)}));
  const control = loaded(document.getElementById("control"));
  const links = [], anchors = [];
  for (const a of page.querySelectorAll("a[href]")) {
    const href = a.getAttribute("href");
    if (href.startsWith("#")) {
      anchors.push({href, ok: page.getElementById(href.slice(1)) !== null});
      continue;
    }
    let status = -1;
    try { status = (await fetch(a.href, {method: "HEAD"})).status; } catch (e) {}
    links.push({href, status});
  }
  const headings = [...page.querySelectorAll("h1,h2")].map((h) => h.tagName + " " + h.textContent);
  document.getElementById("out").textContent = JSON.stringify({images, control, links, anchors, headings});
});
</script></body></html>
"""


def _chromium():
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        if os.environ.get("DEEPLANDSCAPE_SKIP_BROWSER") == "1":
            pytest.skip("DEEPLANDSCAPE_SKIP_BROWSER=1 and no chromium")
        pytest.fail("chromium is missing: `make browser` (as root) or `apt-get install -y chromium`")
    return path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_demo_report_opens_in_chromium_with_every_image_loaded(tmp_path):
    chromium = _chromium()
    # The page `make demo` ends with (a smaller floor, the same four experiments).
    assert (
        main(["demo", "--out", str(tmp_path / "runs"), "--sizes", "12", "20", "--runs", "16", "--quiet"]) == 0
    )
    (tmp_path / "check.html").write_text(WRAPPER)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/check.html"
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", "--virtual-time-budget=5000",
        ]  # fmt: skip
        done = subprocess.run([chromium, *flags, url], capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        thread.join()
    found = re.search(r'<pre id="out">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1) != "pending", done.stdout[-2000:] + done.stderr[-2000:]
    page = json.loads(html.unescape(found.group(1)))

    # A missing figure reads as not loaded (the control), every figure of both experiments as loaded.
    assert page["control"] is False
    expected = {
        "complexity/complexity.png", "complexity/counts.png", "floor/floor.png", "anneal/val_error.png",
        "anneal/train_loss.png", "anneal/min_abs_grad.png", "anneal/alignment.png", "anneal/width.png",
        "hessian-spectrum/hessian_spectrum.png",
    }  # fmt: skip
    assert expected <= {i["src"] for i in page["images"]}
    assert page["images"] and all(i["ok"] for i in page["images"]), page["images"]
    # Relative links (the runs' own reports) resolve; contents links name a heading.
    runs = {f"{name}/report.html" for name in ("complexity", "floor", "anneal", "hessian-spectrum")}
    assert runs <= {link["href"] for link in page["links"]}
    assert all(link["status"] == 200 for link in page["links"]), page["links"]
    assert {"#claims-summary", "#complexity", "#floor", "#anneal"} <= {a["href"] for a in page["anchors"]}
    assert all(a["ok"] for a in page["anchors"]), page["anchors"]
    assert page["headings"][0].startswith("H1 deeplandscape")
    assert {"H2 Contents", "H2 Claims summary", "H2 complexity", "H2 floor", "H2 anneal"} <= set(
        page["headings"]
    )
