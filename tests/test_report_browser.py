"""The demo-like report opened as a user would: Snakemake's `--report` page (results/report.html) in Debian's headless
chromium, driven over the DevTools protocol (a pipe, no extra package): it loads without script errors, and after
clicking Summary -> index.html it shows Table 1 and the figures. The report opens on the answer (the workflow
description includes results/report/answer.rst); the page's answer paragraph is short, every figure has a caption that
names its probe set and layer, not its file name. Screenshots are kept (the test's directory and /tmp/report-shots/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from smk import snakemake  # noqa: E402
from test_report_demo import build_demo, run_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (CI runs as root on a fresh machine)."""
    found = shutil.which("chromium")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"])
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"chromium missing and apt-get unusable: {exc}")
        if proc.returncode != 0:
            pytest.skip(f"chromium missing and `{' '.join(cmd)}` failed (apt unreachable?): {proc.stderr[-300:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no `chromium` on PATH")
    return found


class DevTools:
    """Chrome DevTools protocol over --remote-debugging-pipe (fd 3: commands in, fd 4: replies out, NUL-separated)."""

    def __init__(self, binary: str, profile: Path) -> None:
        import fcntl

        r, self._to_chrome = os.pipe()
        self._from_chrome, w = os.pipe()
        # above fd 10, so that moving them onto 3 and 4 in the child cannot overwrite one with the other
        to_chrome_r = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 10)
        from_chrome_w = fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(r)
        os.close(w)
        self._proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
            close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)))  # dup2: inheritable copies
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], 1.0)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 60) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Collect events for a while."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def _eval(dt: DevTools, session: str, expr: str, context: int | None = None) -> Any:
    params: dict[str, Any] = {"expression": expr, "returnByValue": True}
    if context is not None:
        params["contextId"] = context
    out = dt.send("Runtime.evaluate", params, session)
    return out.get("result", {}).get("value")


def _wait_for(dt: DevTools, session: str, expr: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = _eval(dt, session, expr)
        if value:
            return value
        dt.pump(0.5)
    raise AssertionError(f"page never satisfied: {expr}")


CLICK = """(() => {{
  const want = {label!r};
  const hit = [...document.querySelectorAll('a')].find(a => a.textContent.trim() === want);
  if (hit) {{ hit.click(); return true; }}
  return false;
}})()"""
#: the eye button in the results table row that names index.html
CLICK_RESULT = """(() => {
  const rows = [...document.querySelectorAll('tr')].filter(r => r.textContent.includes('index.html'));
  for (const r of rows) { const a = r.querySelector('a[href="#"]'); if (a) { a.click(); return true; } }
  return false;
})()"""


@pytest.fixture(scope="module")
def snakemake_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo-like report, packed by `snakemake --report results/report.html` in a working directory."""
    work = tmp_path_factory.mktemp("browser")
    run_report(work, build_demo(work))
    snakemake("--configfile", str(REPO / "config/config.yaml"), "--report", "results/report.html", cwd=work,
              timeout=600)
    page = work / "results/report/index.html"
    # Snakemake's report shows index.html as a base64 data URL, which Chromium blocks above 2 MB (4/3 of the file)
    assert page.stat().st_size < 1.45e6, f"index.html of {page.stat().st_size} bytes: too large for the viewer"
    return work / "results/report.html"


def test_report_html_shows_table1_and_figures_in_headless_chromium(snakemake_report, tmp_path):
    binary = chromium()
    dt = DevTools(binary, tmp_path / "profile")
    try:
        target = dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Page", "Log"):
            dt.send(f"{domain}.enable", session=session)
        dt.send("Page.navigate", {"url": snakemake_report.as_uri()}, session)
        _wait_for(dt, session, "document.readyState === 'complete' && document.body.textContent.includes('Results')")
        dt.pump(2)
        front = _eval(dt, session, "document.body.innerText") or ""
        shots = {"snakemake_report_front": dt.send("Page.captureScreenshot", {"format": "png"}, session)["data"]}
        assert _eval(dt, session, CLICK.format(label="Summary")), "no Summary category in the report"
        _wait_for(dt, session, "[...document.querySelectorAll('tr')].some(r => r.textContent.includes('index.html') "
                               "&& r.querySelector('a[href=\"#\"]'))")
        assert _eval(dt, session, CLICK_RESULT), "no view button for index.html"
        dt.pump(3)
        contexts = [e["params"]["context"]["id"] for e in dt.events
                    if e.get("method") == "Runtime.executionContextCreated"]
        shown = None
        deadline = time.monotonic() + 60
        while shown is None and time.monotonic() < deadline:
            for ctx in contexts:
                try:
                    text = _eval(dt, session, "document.body ? document.body.innerText : ''", ctx) or ""
                except RuntimeError:
                    continue  # a context that went away
                if "Table 1: embedding scores" in text:
                    images = _eval(dt, session, "[...document.images].filter(i => i.complete && "
                                                "i.naturalWidth > 0).length", ctx)
                    answers = _eval(dt, session, "[...document.querySelectorAll('p.answer')].map(p => p.innerText)",
                                    ctx)
                    captions = _eval(dt, session, "[...document.querySelectorAll('figcaption')].map(c => c.innerText)",
                                     ctx)
                    shown = (text, images, answers, captions)
                    shots["index_answer"] = dt.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
                    _eval(dt, session, "document.querySelector('figure').scrollIntoView()", ctx)
                    dt.pump(1)
                    shots["index_first_figure"] = dt.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
            if shown is None:
                dt.pump(1)
                contexts = [e["params"]["context"]["id"] for e in dt.events
                            if e.get("method") == "Runtime.executionContextCreated"]
        assert shown is not None, "index.html opened from the report does not show Table 1"
        text, images, answers, captions = shown
        assert "Mean(Task)" in text and "Δ Mean(Task)" in text and "reason-E" in text  # Table 1
        assert images >= 10, "figures not rendered"
        assert len(answers) == 1 and answers[0].startswith("tiny: On the task list, reason-E")
        assert len(answers[0].split()) <= 66, f"answer of {len(answers[0].split())} words: {answers[0]}"
        assert "Plumbing, not a finding" in text
        assert len(captions) == images and not [c for c in captions if c.endswith(".png")]
        assert all("pair tiny" in c for c in captions)
        assert all("probe set" in c and "layer" in c for c in captions if not c.startswith(("Contrastive", "RL")))
        errors = [e["params"] for e in dt.events if e.get("method") == "Runtime.exceptionThrown"]
        errors += [e["params"]["entry"] for e in dt.events if e.get("method") == "Log.entryAdded"
                   and e["params"]["entry"].get("level") == "error"]
    finally:
        dt.close()
    import base64

    keep = Path("/tmp/report-shots")
    keep.mkdir(parents=True, exist_ok=True)
    for name, data in shots.items():
        artefact = tmp_path / f"{name}.png"
        artefact.write_bytes(base64.b64decode(data))
        shutil.copy(artefact, keep / artefact.name)
        assert artefact.stat().st_size > 10_000
    print(f"screenshots of results/report.html: {sorted(shots)} in {tmp_path} and {keep}")
    assert not errors, f"script errors on the page: {errors}"
    # the report opens on the answer: the workflow description carries it and links to the whole page
    assert "Do reasoning backbones make better embedding models?" in front
    assert "tiny: On the task list" in front and "Plumbing, not a finding" in front and "index.html" in front
