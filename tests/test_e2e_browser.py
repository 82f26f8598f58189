"""The notebooks in a real browser: JupyterLab on localhost, driven in Debian's headless Chromium.

Each notebook is copied into a temporary server root (quick mode injected after its
``parameters`` cell), opened, run with Run > Run All Cells, and checked for error outputs and
widgets that failed to display. The mixing notebook's λ slider must redraw the mixed images;
the training notebook's progress bar and live plot must appear and advance; in the mixing notebook an answer
typed into the exercise cell must make its check cell say "correct". Screenshots go to
``screenshots/browser/`` (git-ignored).

Which notebooks: ``notebooks/02_global_local_mixtures.ipynb`` and ``notebooks/05_training.ipynb``
when they exist (or in ``$GLMC_BROWSER_NOTEBOOKS``), else the stand-ins under
``tests/browser_fixtures/``; ``GLMC_BROWSER_STANDINS=1`` runs the stand-ins as well.
``GLMC_BROWSER_TIMEOUT`` (seconds, default 600) bounds one notebook's Run All;
``GLMC_BROWSER_PARAMS`` (e.g. ``"EPOCHS = 2"``) adds parameter overrides after ``QUICK = True``. Without Chromium
or Playwright the tests skip, unless ``GLMC_BROWSER_REQUIRED=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest
from browserlab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NeverReady,
    NotebookPage,
    clean_dir,
    digest,
    images_near,
    lam_slider,
    missing_requirement,
    prepare_notebook,
    start_lab,
    wait_for,
)
from conftest import REPO, cifar10_zip_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXTURES = Path(__file__).parent / "browser_fixtures"
REAL = Path(os.environ.get("GLMC_BROWSER_NOTEBOOKS", REPO / "notebooks"))
NOTEBOOKS = {"mixing": ("02_global_local_mixtures.ipynb", "mixing_standin.ipynb"),
             "training": ("05_training.ipynb", "training_standin.ipynb")}
SHOTS = REPO / "screenshots" / "browser"
READY_TIMEOUT = 90.0
RUN_TIMEOUT = float(os.environ.get("GLMC_BROWSER_TIMEOUT", "600"))
PARAMS = os.environ.get("GLMC_BROWSER_PARAMS", "")  # e.g. "EPOCHS = 2": injected after QUICK = True


def cases(role: str) -> list:
    """The real notebook when present, else (or also, with GLMC_BROWSER_STANDINS=1) its stand-in."""
    real_name, standin_name = NOTEBOOKS[role]
    out = []
    if (REAL / real_name).is_file():
        out.append(pytest.param(REAL / real_name, id=f"{role}-real"))
    if not out or os.environ.get("GLMC_BROWSER_STANDINS") == "1":
        out.append(pytest.param(FIXTURES / standin_name, id=f"{role}-standin"))
    return out


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    reason = missing_requirement()
    if reason and os.environ.get("GLMC_BROWSER_REQUIRED") == "1":
        pytest.fail(f"GLMC_BROWSER_REQUIRED=1 but {reason}")
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab-root")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # The kernel sees the test data (never a user's data root) and shares the checkout's decode cache.
    env["GLMC_DATA_ROOT"] = str(cifar10_zip_path() or "")
    env["GLMC_CACHE_DIR"] = os.environ.get("GLMC_CACHE_DIR", str(REPO / "data" / "cache"))
    server = start_lab(root, tmp_path_factory.mktemp("lab-state"), env, timeout=READY_TIMEOUT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(lab):
    from playwright.sync_api import sync_playwright

    clean_dir(SHOTS)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_notebook(lab, browser, request):
    """``open_notebook(source)`` -> a :class:`NotebookPage` with the prepared copy loaded and its kernel idle."""
    contexts = []

    def _open(source: Path) -> NotebookPage:
        name = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name
        rel = f"{name}/{source.name}"
        code_cells = prepare_notebook(source, lab.root / rel, PARAMS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        nb = NotebookPage(page, SHOTS, name)
        page.on("console", lambda m: nb.console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        nb.open(lab.url(rel, workspace=re.sub(r"[^A-Za-z0-9]", "", name)), READY_TIMEOUT, code_cells)
        return nb

    yield _open
    for ctx in contexts:
        ctx.close()
    lab.shutdown_kernels()


def run_clean(nb: NotebookPage, on_poll=None) -> None:
    """Run all cells and require every code cell to have run without an error or a broken widget."""
    nb.shot("opened")
    nb.run_all()
    nb.wait_done(RUN_TIMEOUT, on_poll)
    widgets = nb.wait_widgets_settled()
    errors = nb.errors()
    nb.shot("ran")
    assert not errors, f"{nb.name}: " + "; ".join(errors)
    assert not nb.unexecuted(), f"{nb.name}: code cells {nb.unexecuted()} did not run"
    assert widgets["widgets"], f"{nb.name}: no ipywidgets view rendered on the page"


@pytest.mark.parametrize("source", cases("mixing"))
def test_mixing_notebook_lambda_slider_redraws(open_notebook, source):
    nb = open_notebook(source)
    run_clean(nb)
    page = nb.page
    slider = lam_slider(page)
    wait_for(lambda: slider.count() > 0, 15, "an ipywidgets slider labelled 'λ' (.widget-slider)")
    slider.scroll_into_view_if_needed()
    cell = slider.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), ' jp-Cell ')][1]")
    handle, readout = slider.locator(".noUi-handle"), slider.locator(".widget-readout")
    before = images_near(page, slider.element_handle())
    assert before, "no image inside a widget Output (or widgets.Image) near the λ slider"
    value0 = readout.inner_text()
    before_png = nb.shot("slider-before", cell)

    # Keyboard first (what a reader without a mouse does), a drag if the slider ignores the keys;
    # always towards the middle of the range, so there is room to move.
    aria = [float(handle.get_attribute(a) or "nan") for a in ("aria-valuenow", "aria-valuemin", "aria-valuemax")]
    up = not aria[0] > (aria[1] + aria[2]) / 2
    handle.focus()
    for keys in (["PageUp" if up else "PageDown"] * 2, ["ArrowRight" if up else "ArrowLeft"] * 4):
        for key in keys:
            handle.press(key)
        try:
            wait_for(lambda: readout.inner_text() != value0, 3, "the λ readout changing after key presses")
            break
        except NeverReady:
            continue
    else:
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + (80 if up else -80), box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        wait_for(lambda: readout.inner_text() != value0, 10,
                 "the λ readout changing after key presses or dragging the slider handle")
    value1 = readout.inner_text()

    def redrawn():
        now = images_near(page, slider.element_handle())
        return now and now != before

    wait_for(redrawn, 30, f"the mixed image changing after λ moved from {value0} to {value1}")
    # Each key press is one redraw: wait until the last one is painted (kernel idle, images unchanged for 1.5 s).
    last = {"imgs": None, "since": 0.0}

    def settled():
        now, t = images_near(page, slider.element_handle()), time.monotonic()
        if now != last["imgs"] or not nb.idle(nb.state()):
            last.update(imgs=now, since=t)
        return t - last["since"] > 1.5

    wait_for(settled, 30, "the kernel going idle and the mixed image settling after the redraws")
    after_png = nb.shot("slider-after", cell)
    assert before_png.read_bytes() != after_png.read_bytes(), "the λ cell looks the same after moving the slider"
    errors = nb.errors()
    assert not errors, "after moving λ: " + "; ".join(errors)

    # The exercise: a student types the answer into the TODO cell and runs it and its check cell.
    verdict = nb.answer_exercise("LAM_L_CORNER = 1 - 100 / 1024")
    if source.parent == REAL:  # the stand-in has no exercise
        assert verdict is not None, f"{source.name} has no cell tagged 'exercise'"
        assert "Exercise 02.1 (box in the corner): correct" in verdict, f"the check cell said: {verdict!r}"
    errors = nb.errors()
    assert not errors, "after the exercise: " + "; ".join(errors)


@pytest.mark.parametrize("source", cases("training"))
def test_training_notebook_progress_and_live_plot(open_notebook, source):
    nb = open_notebook(source)
    bars: dict[str, list[float]] = defaultdict(list)  # bar id -> distinct fill percentages in order seen
    plots: dict[str, list[str]] = defaultdict(list)  # Output id -> distinct image digests in order seen
    shots: list[tuple[Path, int]] = []  # (screenshot, bar updates seen when it was taken)

    def watch():
        live = nb.live()
        for b in live["bars"]:
            if not math.isnan(b["pct"]) and (not bars[b["id"]] or bars[b["id"]][-1] != b["pct"]):
                bars[b["id"]].append(b["pct"])
        for im in live["images"]:
            d = digest(im["src"])
            if d not in plots[im["id"]]:
                plots[im["id"]].append(d)
        # Two snapshots mid-run, once a plot is up: the bar's cell scrolled so the plot above it shows too.
        moving = [b for b in live["bars"] if 0 < b["pct"] < 100]
        seen = sum(len(v) for v in bars.values())
        if moving and plots and len(shots) < 2 and (not shots or seen >= shots[-1][1] + 3):
            nb.page.evaluate("id => document.querySelector(`[data-glmc-id='${id}']`)"
                             ".scrollIntoView({block: 'end'})", moving[0]["id"])
            shots.append((nb.shot(f"running-{len(shots) + 1}"), seen))

    run_clean(nb, on_poll=watch)
    advanced = {k: v for k, v in bars.items() if len(v) >= 2 and v[-1] > v[0]}
    assert bars, "no tqdm progress bar (an ipywidgets progress widget) appeared while the notebook ran"
    assert advanced, f"no progress bar advanced while the notebook ran; fill % seen per bar: {dict(bars)}"
    redrawn = {k: v for k, v in plots.items() if len(v) >= 2}
    assert redrawn, ("no live plot: no widget Output's image was redrawn during the run; "
                     f"distinct images per Output: { {k: len(v) for k, v in plots.items()} }")
    final = {im["id"] for im in nb.live()["images"]}
    assert final & set(redrawn), "the live plot is gone from the page after the run"
    plot_id = next(iter(final & set(redrawn)))
    plot = nb.page.locator(f"[data-glmc-id='{plot_id}']")
    nb.shot("plot-final", plot.locator("xpath=ancestor::div[contains(concat(' ', normalize-space(@class), ' '), "
                                       "' jp-OutputArea ')][last()]"))


def test_error_outputs_are_reported(open_notebook):
    """The checks above can fail: a widget that cannot display and a cell raising ZeroDivisionError are found."""
    nb = open_notebook(FIXTURES / "broken_standin.ipynb")
    nb.run_all()
    nb.wait_done(60)
    nb.wait_widgets_settled()
    errors = nb.errors()
    nb.shot("ran")
    assert any(e.startswith("cell 3: ZeroDivisionError") for e in errors), errors
    assert any(e.startswith("traceback on the page") and "ZeroDivisionError" in e for e in errors), errors
    assert "page shows 'Error displaying widget'" in errors, errors
    assert nb.unexecuted() == [3], "Run All Cells should stop at the error"
