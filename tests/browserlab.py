"""JupyterLab served on localhost and driven in headless Chromium: the helpers behind ``test_e2e_browser.py``.

Everything waits a bounded time and fails with :class:`NeverReady` naming what never appeared,
so a broken page ends the test instead of hanging CI. The server gets a random token, a free
port on 127.0.0.1, and temporary config, data, settings and workspace folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CHROMIUM = Path(os.environ.get("GLMC_CHROMIUM", "/usr/bin/chromium"))
# No background traffic: CI has no internet, and nothing may be downloaded on the fly.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]

# User settings written into the temporary settings folder.
LAB_SETTINGS = {
    # No "Would you like to receive official Jupyter news?" toast over the notebook.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # Every cell stays in the DOM, so errors and widgets below the fold are seen too.
    # ...and the notebook's own kernel starts without a "Select Kernel" dialog.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
}

STDERR_MIME = "application/vnd.jupyter.stderr"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Model not found")


class NeverReady(AssertionError):
    """Something the test waited for did not happen within its time limit."""


def missing_requirement() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not CHROMIUM.is_file():
        return (f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (or set GLMC_CHROMIUM) "
                "to run the browser tests")
    for module, package in (("playwright.sync_api", "playwright"), ("jupyterlab", "jupyterlab"),
                            ("ipywidgets", "ipywidgets")):
        try:
            __import__(module)
        except ImportError:
            return f"{package} is not installed: pip install -e '.[dev,notebooks]' to run the browser tests"
    return None


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.25,
             on_fail: Callable[[], str] | None = None):
    """Poll ``check`` until it returns something truthy; raise :class:`NeverReady` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_fail() if on_fail else ""
            raise NeverReady(f"{what} never happened within {timeout:.0f} s" + (f"; {detail}" if detail else ""))
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_notebook(src: Path, dst: Path, params: str = "") -> int:
    """Copy ``src`` to ``dst`` for the browser (quick mode forced, kernel set to ``python3``); returns its code cells.

    As papermill does, ``QUICK = True`` and then ``params`` (statements separated by ``;`` or new
    lines, e.g. ``"EPOCHS = 2"``) go into a cell right after the cell tagged ``parameters``.
    """
    nb = json.loads(src.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {})["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}
    cells = nb.get("cells", [])
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            cells.insert(i + 1, {"cell_type": "code", "execution_count": None, "id": "injected-parameters",
                                 "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
                                 "source": "\n".join(["QUICK = True  # injected by tests/test_e2e_browser.py",
                                                      *(x.strip() for x in re.split(r"[;\n]", params) if x.strip())])})
            break
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    return sum(c.get("cell_type") == "code" for c in cells)


@dataclass
class LabServer:
    """A running ``jupyter lab``; :meth:`stop` ends it and its kernels."""

    proc: subprocess.Popen
    port: int
    token: str
    root: Path
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, workspace: str) -> str:
        """The notebook ``path`` (relative to the root) in its own, fresh workspace."""
        return f"{self.base}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def shutdown_kernels(self) -> None:
        try:
            for k in self.api("/api/kernels"):
                self.api(f"/api/kernels/{k['id']}", method="DELETE", timeout=15)
        except (OSError, ValueError):
            pass  # the server is going away anyway

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is not None:
            return
        # The server runs in its own process group (ours): SIGTERM lets it shut its kernels down first.
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # kernels left behind in the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_lab(root: Path, state: Path, extra_env: dict[str, str] | None = None, timeout: float = 90.0) -> LabServer:
    """Start JupyterLab on a free localhost port serving ``root``; wait until its API answers."""
    root.mkdir(parents=True, exist_ok=True)
    dirs = {name: state / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    for plugin, values in LAB_SETTINGS.items():
        f = dirs["settings"] / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MPLBACKEND"))}
    env.update({"JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
                "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
                "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "IPYTHONDIR": str(dirs["ipython"]),
                "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    port, token = free_port(), secrets.token_hex(24)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}",
           # window.jupyterapp lets the test read cell outputs from the notebook model, not only the DOM.
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root; JupyterLab refuses to start there otherwise
    log = state / "jupyterlab.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(proc, port, token, root, log)

    def answered():
        if proc.poll() is not None:
            raise NeverReady(f"JupyterLab exited with code {proc.returncode} before answering; "
                             f"its log ends:\n{server.log_tail()}")
        try:
            return server.api("/api/status", timeout=2) is not None
        except (OSError, ValueError):
            return False

    try:
        wait_for(answered, timeout, f"JupyterLab answering on {server.base}", interval=0.5,
                 on_fail=lambda: "its log ends:\n" + server.log_tail())
    except BaseException:
        server.stop()
        raise
    return server


# --- the page -----------------------------------------------------------------------------------

_STATE_JS = """() => {
  const ind = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return {status: ind ? ind.getAttribute('data-status') : null, prompts,
          kernel: session && session.kernel ? session.kernel.status : null,
          dialog: document.querySelector('.jp-Dialog') ? document.querySelector('.jp-Dialog').innerText : null};
}"""

# Error outputs as the notebook model holds them (output_type "error"), by cell index.
_MODEL_ERRORS_JS = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const model = panel && panel.content && panel.content.model;
  if (!model) return null;
  const errors = [];
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    if (cell.type !== 'code') continue;
    for (let j = 0; j < cell.outputs.length; j++) {
      const out = cell.outputs.get(j).toJSON();
      if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    }
  }
  return errors;
}"""

# Rendered stderr that is a traceback (stream stderr such as tqdm's or fit's log lines is not an error).
_DOM_ERRORS_JS = """() => [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="%s"]')]
  .map(e => e.innerText)
  .filter(t => /Traceback \\(most recent call last\\)/.test(t) || /^\\s*[A-Za-z_.]*(Error|Exception)\\s*:/m.test(t))
  .map(t => t.trim().split('\\n').slice(-3).join(' | '))""" % STDERR_MIME

# Widget views carry no data-mime-type; a view still resolving its model reads "Loading widget...",
# and one that failed turns into "Error displaying widget: ..." only after that.
_WIDGET_STATE_JS = """() => {
  const outs = [...document.querySelectorAll('.jp-OutputArea-output')];
  return {loading: outs.filter(o => o.innerText.trim().startsWith('Loading widget')).length,
          widgets: document.querySelectorAll('.jp-OutputArea-output .jupyter-widgets[class*="widget-"]').length};
}"""

# Progress bars and widget-output images, each element tagged with a stable id the first time it is seen,
# so a bar that advances (or an Output whose image is redrawn) can be followed across polls.
_LIVE_JS = """() => {
  window.__glmcIds = window.__glmcIds || 0;
  const tag = el => (el.dataset.glmcId = el.dataset.glmcId || String(++window.__glmcIds));
  const bars = [...document.querySelectorAll('.widget-hprogress, .widget-vprogress')].map(el => {
    const bar = el.querySelector('.progress-bar');
    const size = bar ? (el.classList.contains('widget-hprogress') ? bar.style.width : bar.style.height) : '';
    const box = el.closest('.widget-hbox') || el;
    return {id: tag(el), pct: parseFloat(size), text: box.innerText.replace(/\\s+/g, ' ').trim()};
  });
  const images = [...document.querySelectorAll('.widget-output, .widget-image')].map(el => {
    const img = el.tagName === 'IMG' ? el : el.querySelector('img');
    return {id: tag(el), src: img ? img.src : ''};
  }).filter(x => x.src);
  return {bars, images};
}"""


# Index of the first cell tagged "exercise" (the TODO cell a student fills in), -1 when there is none.
_EXERCISE_JS = """() => {
  const model = window.jupyterapp.shell.currentWidget.content.model;
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    const tags = (cell.getMetadata && cell.getMetadata('tags')) || (cell.sharedModel.getMetadata().tags) || [];
    if (tags.includes('exercise')) return i;
  }
  return -1;
}"""


def digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass
class NotebookPage:
    """One notebook open in JupyterLab in a Playwright page."""

    page: object  # playwright.sync_api.Page
    shots: Path
    name: str
    console: list[str] = field(default_factory=list)

    def shot(self, step: str, locator=None) -> Path:
        path = self.shots / f"{self.name}-{step}.png"
        (locator or self.page).screenshot(path=str(path), timeout=15_000)
        return path

    def state(self) -> dict:
        return self.page.evaluate(_STATE_JS)

    def _fail_dialog(self, st: dict) -> None:
        if st.get("dialog"):
            self.shot("dialog")
            raise AssertionError(f"JupyterLab showed a dialog instead of running: {st['dialog'][:300]!r}")

    @staticmethod
    def idle(st: dict) -> bool:
        """The session's kernel is idle (and so is the toolbar's execution indicator, where shown)."""
        return st["kernel"] == "idle" and st["status"] in ("idle", None)

    def open(self, url: str, timeout: float, code_cells: int) -> None:
        """Load the notebook and wait until all its ``code_cells`` are shown and its kernel is idle."""
        try:
            self.page.goto(url, timeout=timeout * 1000, wait_until="domcontentloaded")
        except Exception as e:  # noqa: BLE001 - playwright's own errors, reworded
            raise NeverReady(f"the JupyterLab page at {url.split('?')[0]} did not load within {timeout:.0f} s: "
                             f"{str(e).splitlines()[0]}") from None

        def ready():
            st = self.state()
            self._fail_dialog(st)
            return len(st["prompts"]) == code_cells and self.idle(st)

        try:
            wait_for(ready, timeout, f"the notebook showing its {code_cells} code cells with an idle kernel",
                     on_fail=self._describe)
        except NeverReady:
            self._try_shot("never-ready")
            raise

    def _describe(self) -> str:
        try:
            st = self.state()
            running = [i + 1 for i, p in enumerate(st["prompts"]) if p.startswith("[*]")]
            ran = sum(bool(re.match(r"\[\d+\]", p)) for p in st["prompts"])
            return (f"kernel status {st['kernel']!r}, execution indicator {st['status']!r}, "
                    f"{len(st['prompts'])} code cells shown, {ran} run"
                    + (f", code cell {running[0]} still running" if running else ""))
        except Exception as e:  # noqa: BLE001
            return f"page not readable: {e}"

    def _try_shot(self, step: str) -> None:
        try:
            self.shot(step)
        except Exception:  # noqa: BLE001 - a screenshot is a bonus when something already failed
            pass

    def run_all(self) -> None:
        """Run > Run All Cells, as a reader would."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click(timeout=15_000)
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click(timeout=15_000)

    def wait_done(self, timeout: float, on_poll: Callable[[], None] | None = None) -> None:
        """Wait until a run started and ended: no ``[*]`` prompt is left and the kernel is idle."""
        def started():
            st = self.state()
            self._fail_dialog(st)
            return any(p.startswith("[*]") or re.match(r"\[\d+\]", p) for p in st["prompts"])

        wait_for(started, 30, "a cell starting to run after Run All Cells", on_fail=self._describe)
        t0 = time.monotonic()
        idle_since = None

        def finished():
            nonlocal idle_since
            if on_poll:
                on_poll()
            st = self.state()
            self._fail_dialog(st)
            done = self.idle(st) and not any(p.startswith("[*]") for p in st["prompts"])
            # Idle for a moment, so a gap between two queued cells is not mistaken for the end.
            idle_since = (idle_since or time.monotonic()) if done else None
            return done and time.monotonic() - idle_since > 1.0

        try:
            wait_for(finished, timeout, "the kernel going idle after running all cells",
                     on_fail=lambda: self._describe() + f" after {time.monotonic() - t0:.0f} s")
        except NeverReady:
            self._try_shot("timeout")
            raise

    def unexecuted(self) -> list[int]:
        return [i for i, p in enumerate(self.state()["prompts"]) if not re.match(r"\[\d+\]", p)]

    def errors(self) -> list[str]:
        """Error outputs (from the model and the rendered page) and widgets that failed to display."""
        found = []
        model_errors = self.page.evaluate(_MODEL_ERRORS_JS)
        if model_errors is None:
            found.append("window.jupyterapp has no notebook model (is --LabApp.expose_app_in_browser on?)")
        else:
            found += model_errors
        found += [f"traceback on the page: {t}" for t in self.page.evaluate(_DOM_ERRORS_JS)]
        body = self.page.locator("body").inner_text(timeout=10_000)
        found += [f"page shows {w!r}" for w in WIDGET_ERRORS if w in body]
        return found

    def wait_widgets_settled(self, timeout: float = 30) -> dict:
        """No widget view is left at "Loading widget..." (each rendered or failed); returns the counts."""
        def settled():
            w = self.page.evaluate(_WIDGET_STATE_JS)
            return w if w["loading"] == 0 else None

        return wait_for(settled, timeout, "every widget view leaving 'Loading widget...'",
                        on_fail=lambda: str(self.page.evaluate(_WIDGET_STATE_JS)))

    def live(self) -> dict:
        return self.page.evaluate(_LIVE_JS)

    def answer_exercise(self, answer: str, timeout: float = 60) -> str | None:
        """Type ``answer`` into the cell tagged ``exercise``, run it and the check cell after it (Shift+Enter twice,
        as a student does) and return the check cell's output text; None when the notebook has no exercise cell."""
        index = self.page.evaluate(_EXERCISE_JS)
        if index < 0:
            return None
        cells = self.page.locator(".jp-Notebook .jp-Cell")
        editor = cells.nth(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.type(answer)
        self.page.keyboard.press("Shift+Enter")  # runs the exercise cell, selects the check cell
        self.page.keyboard.press("Shift+Enter")  # runs the check cell
        check = cells.nth(index + 1).locator(".jp-OutputArea-output")
        wait_for(lambda: self.idle(self.state()) and check.count() > 0
                 and "not answered" not in check.first.inner_text(), timeout,
                 "the exercise's check cell printing a verdict", on_fail=self._describe)
        self.shot("exercise-checked", cells.nth(index + 1))
        return "\n".join(check.nth(i).inner_text() for i in range(check.count()))


def lam_slider(page, label: str = "λ"):
    """The ipywidgets slider whose description is ``label``."""
    name = page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}"))
    return page.locator(".widget-slider", has=name).first


def images_near(page, element_handle) -> list[str]:
    """Digests of the widget-output images in the cell holding ``element_handle`` (else the whole notebook)."""
    srcs = page.evaluate("""el => {
      const cell = el.closest('.jp-Cell');
      const pick = root => [...root.querySelectorAll('.widget-output img, img.widget-image')].map(i => i.src);
      const near = cell ? pick(cell) : [];
      return near.length ? near : pick(document);
    }""", element_handle)
    return [digest(s) for s in srcs]


def clean_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
