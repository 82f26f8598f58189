"""The checked exercises of all seven notebooks (glmc_core.notebook.exercises and .check).

* every solution in ``notebooks/solutions/`` passes its check: the first ```python block after the words
  ``exercise KEY`` is run (in a small stand-in of the notebook's namespace where the check needs one) and what it
  defines is given to :func:`exercises.check`, as the notebook's check cell does;
* the check of a function exercise accepts the package's own function and rejects planted wrong implementations,
  written the way a student might, naming the mistake in its hint; it never raises at the student;
* every python block of the solutions compiles, and those marked ``# runs on its own`` run.
"""

from __future__ import annotations

import ast
import math
import re
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO

from glmc_core import analysis, losses, mixing
from glmc_core import longtail_losses as ltl
from glmc_core.notebook import exercises
from glmc_core.notebook.check import Case, Mistake, check_function

SOLUTIONS = REPO / "notebooks" / "solutions"


def _solutions_text(key: str) -> str:
    return (SOLUTIONS / f"{key[:2]}_solutions.md").read_text()


def _solution_code(key: str) -> str:
    text = _solutions_text(key)
    found = re.search(rf"exercise {re.escape(key)}\b", text)
    assert found, f"{key[:2]}_solutions.md does not mention 'exercise {key}'"
    block = re.search(r"```python\n(.*?)```", text[found.end():], re.S)
    assert block, f"no python block after 'exercise {key}' in {key[:2]}_solutions.md"
    return textwrap.dedent(block.group(1))


def _glmc_eval():
    return SimpleNamespace(norms={"fc": np.array([3.0, 2.0, 1.0]), "fc_cb": np.array([1.0, 1.5, 2.0])},
                           counts=np.array([50, 500, 5]), run=SimpleNamespace(method="glmc"))


def _two_histories():
    """GLMC ahead in epoch 2, behind in 3, ahead from 4 to the end: the answer of 05.3 is 4, not 2."""
    glmc = [{"epoch": e, "top1": t} for e, t in enumerate([1.0, 5.0, 2.0, 6.0, 7.0], start=1)]
    ce = [{"epoch": e, "top1": t} for e, t in enumerate([2.0, 4.0, 3.0, 5.0, 6.0], start=1)]
    return glmc, ce


# the notebook's names a solution uses, and the context its check cell passes
CONTEXTS = {
    "04.1": lambda: ({"np": np}, {}),
    "05.1": lambda: ({"done": [{"epoch": 1}, {"epoch": 2}]}, {"done": 2}),
    "05.3": lambda: ({"hg": (h := _two_histories())[0], "hc": h[1]}, {"glmc_history": h[0], "ce_history": h[1]}),
    "06.1": lambda: ({"glmc": (g := _glmc_eval()), "evals": [g]}, {"evals": [g]}),
    "07.1": lambda: ({"np": np}, {}),
}


def _check(key, answer, capsys, **context):
    result = exercises.check(key, answer, **context)
    return result, capsys.readouterr().out


# ------------------------------------------------------------------------------------------------- solutions
@pytest.mark.parametrize("key", sorted(exercises.EXERCISES))
def test_the_solution_passes_the_check(key, capsys):
    ex = exercises.EXERCISES[key]
    namespace, context = CONTEXTS.get(key, lambda: ({}, {}))()
    exec(compile(_solution_code(key), f"<solution {key}>", "exec"), namespace)
    assert ex.name in namespace, f"the solution of {key} does not define {ex.name}"
    result, out = _check(key, namespace[ex.name], capsys, **context)
    assert result is True, out
    assert ("✓" if ex.kind == "function" else ": correct") in out


def _python_blocks():
    for path in sorted(SOLUTIONS.glob("*.md")):
        for i, block in enumerate(re.findall(r"^[ \t]*```python\n(.*?)^[ \t]*```", path.read_text(), re.S | re.M)):
            yield pytest.param(textwrap.dedent(block), id=f"{path.stem}-{i}")


@pytest.mark.parametrize("code", _python_blocks())
def test_every_solution_block_compiles_and_those_that_run_alone_run(code, capsys):
    ast.parse(code)
    if code.startswith("# runs on its own"):
        exec(compile(code, "<solution>", "exec"), {})
        out = capsys.readouterr().out
        expected = [line[2:].strip() for line in code.splitlines() if line.startswith("# ") and "runs on" not in line]
        for line in expected:  # a comment that shows the output must be what it prints
            assert line in out, (line, out)


def test_the_box_at_lambda_zero_covers_56_percent_on_average():
    """02's solution 1 and exercise 5: what the box covers at λ = 0, with the package's own box."""
    covered = [mixing.centred_box(32, 32, 0.0, cy, cx).area / 1024 for cy in range(32) for cx in range(32)]
    assert np.mean(covered) == pytest.approx(0.5625)
    assert covered.count(1.0) == 1
    text = _solutions_text("02.1")
    assert "56.25 %" in text and "covers the\n   whole image, so CutMix is the partner" not in text


# ------------------------------------------------------------------------------------------- value exercises
def test_unanswered_and_wrong_values(capsys):
    assert _check("04.1", None, capsys)[0] is None
    assert exercises.check("04.1", 141) is False
    assert exercises.check("07.1", [1.0, 1.0, 1.0]) is False
    assert exercises.check("01.1", 250) is False and exercises.check("01.1", 251) is True
    assert exercises.check("02.1", 0.75) is False  # λ, not the area label
    assert exercises.check("03.1", np.array([2 / 101, 200 / 101])) is True
    assert exercises.check("02.1", "0.9") is False  # a string is not a number, and nothing raises
    glmc, ce = _two_histories()
    assert exercises.check("05.3", 2, glmc_history=glmc, ce_history=ce) is False  # first ahead, not ahead for good
    assert exercises.check("05.3", 4, glmc_history=glmc, ce_history=ce) is True
    assert exercises.expected("05.3", glmc_history=glmc, ce_history=[dict(r, top1=99.0) for r in ce]) is None


def test_expected_refuses_a_function_exercise():
    with pytest.raises(ValueError, match="asks for a function"):
        exercises.expected("02.2")


# ---------------------------------------------------------------------------------------- function exercises
FUNCTION_KEYS = sorted(k for k, e in exercises.EXERCISES.items() if e.kind == "function")


def test_every_notebook_has_an_exercise_in_which_the_student_writes_part_of_the_method():
    assert {k[:2] for k in FUNCTION_KEYS} == {f"0{i}" for i in range(1, 8)}
    for nb in ("01", "02", "03"):
        assert [e.kind for e in exercises.notebook_exercises(nb)].count("function") >= 1


PACKAGE = {
    "01.2": lambda counts, k: mixing.class_weights(counts, k),
    "02.2": lambda height, width, lam, cy, cx: mixing.centred_box(height, width, lam, cy, cx),
    "02.3": lambda lam, box, height, width: mixing.cutmix_label_weight(lam, box, height, width, "area"),
    "02.4": None,  # below: through glmc_targets itself
    "03.2": lambda out_g, out_l, targets, alpha, gamma: losses.glmc_loss(out_g, out_l, targets, alpha, gamma),
    "04.2": lambda epoch, total_epochs: losses.alpha_schedule(epoch, total_epochs, "paper"),
    "05.2": losses.cumulative_total,
    "06.2": lambda features, labels, k: analysis.knn_accuracy(features, labels, k),
    "07.2": lambda logits, targets, counts: ltl.balanced_softmax_loss(logits, targets, counts),
}


def _p_g_w_through_glmc_targets(y_u, y_r, weight, class_weights):
    c = len(class_weights)
    return mixing.glmc_targets(y_u, y_r, c, class_weights, weight, mixing.Box(0, 0, 0, 0), 8, 8)["p_g_w"]


PACKAGE["02.4"] = _p_g_w_through_glmc_targets


@pytest.mark.parametrize("key", FUNCTION_KEYS)
def test_the_package_function_itself_passes(key, capsys):
    result, out = _check(key, PACKAGE[key], capsys)
    assert result is True, out
    assert out.startswith(f"✓ Exercise {key}") and "matches" in out


@pytest.mark.parametrize("key", FUNCTION_KEYS)
def test_each_known_mistake_is_rejected_with_its_own_hint(key, capsys):
    ex = exercises.EXERCISES[key]
    assert ex.mistakes
    for m in ex.mistakes:
        result, out = _check(key, m.fn, capsys)
        assert result is False, out
        assert out.startswith(f"✗ Exercise {key}") and "differs from" in out
        assert f"Hint: {m.hint}" in out, (m.hint, out)


@pytest.mark.parametrize("key", FUNCTION_KEYS)
def test_a_stub_is_not_written_yet_and_nothing_raises(key, capsys):
    def stub(*args):
        raise NotImplementedError

    result, out = _check(key, stub, capsys)
    assert result is None and "not written yet" in out and "✓" not in out and "✗" not in out
    assert _check(key, None, capsys)[0] is None
    for wrong in (lambda *a: 1 / 0, lambda *a: None, lambda: 0, lambda *a: "a string", 42):
        result, out = _check(key, wrong, capsys)
        assert result is False, out
        assert "Traceback" not in out and out.startswith("✗")


def test_an_error_in_the_students_code_is_named_with_its_line(capsys):
    source = "def my_alpha(epoch, total_epochs):\n    t = epoch / 0\n    return 1 - t\n"
    ns = {}
    exec(compile(source, "<cell>", "exec"), ns)
    result, out = _check("04.2", ns["my_alpha"], capsys)
    assert result is False
    assert "yours raised ZeroDivisionError" in out and "line 2 of your cell" in out


def test_inputs_give_the_same_case_again():
    a, b = exercises.inputs("02.2", 3), exercises.inputs("02.2", 3)
    assert a == b
    x, y = exercises.inputs("03.2", 1), exercises.inputs("03.2", 1)
    assert torch.equal(x["out_g"]["logits"], y["out_g"]["logits"]) and x["out_g"]["logits"] is not y["out_g"]["logits"]


def test_the_cases_hold_the_edge_cases_the_issue_names():
    box = [exercises.inputs("02.2", i) for i in range(len(exercises.EXERCISES["02.2"].cases()))]
    assert {0.0, 1.0} <= {kw["lam"] for kw in box}
    unclipped = [exercises._box_unclipped(**kw) for kw in box]
    assert any(u[0] < 0 for u in unclipped) and any(u[2] < 0 for u in unclipped)  # sticks out at the top, left
    assert any(u[1] > kw["height"] for u, kw in zip(unclipped, box, strict=True))  # bottom
    assert any(u[3] > kw["width"] for u, kw in zip(unclipped, box, strict=True))  # right
    assert any(kw["height"] != kw["width"] for kw in box)
    labels = [exercises.inputs("02.4", i) for i in range(len(exercises.EXERCISES["02.4"].cases()))]
    assert {0.0, 1.0} <= {kw["weight"] for kw in labels}
    assert any(torch.equal(kw["y_u"], kw["y_r"]) for kw in labels)
    assert any(len(set(kw["y_u"].tolist()) | set(kw["y_r"].tolist())) < len(kw["class_weights"]) / 2 + 1
               for kw in labels)
    loss = [exercises.inputs("03.2", i) for i in range(len(exercises.EXERCISES["03.2"].cases()))]
    assert {0.0, 1.0} <= {kw["alpha"] for kw in loss} and 0.0 in {kw["gamma"] for kw in loss}
    alpha = [exercises.inputs("04.2", i) for i in range(len(exercises.EXERCISES["04.2"].cases()))]
    assert any(kw["epoch"] == 0 for kw in alpha) and any(kw["epoch"] == kw["total_epochs"] for kw in alpha)


def test_the_reweighted_labels_reference_is_what_glmc_targets_gives():
    g = torch.Generator().manual_seed(0)
    y_u, y_r = torch.randint(0, 5, (16,), generator=g), torch.randint(0, 5, (16,), generator=g)
    w = mixing.class_weights([100, 40, 10, 3, 1], 1.2)
    box = mixing.centred_box(16, 16, 0.4, 2, 3)
    t = mixing.glmc_targets(y_u, y_r, 5, w, 0.4, box, 16, 16)
    ref = exercises.EXERCISES["02.4"].reference
    torch.testing.assert_close(ref(y_u, y_r, 0.4, w), t["p_g_w"])
    torch.testing.assert_close(ref(y_u, y_r, mixing.cutmix_label_weight(0.4, box, 16, 16), w), t["p_l_w"])


def test_sample_box_is_centred_box_at_the_drawn_centre():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    for lam in (0.0, 0.3, 0.9, 1.0):
        box = mixing.sample_box(a, 24, 40, lam)
        cy, cx = int(b.integers(24)), int(b.integers(40))
        assert box == mixing.centred_box(24, 40, lam, cy, cx)


# ------------------------------------------------------------------ planted mistakes, written as a student would
def _box(height, width, lam, cy, cx, *, clip=True, rnd=math.ceil, end_half=False, hi_off=0, order="yyxx"):
    cut = math.sqrt(1 - lam)
    ch, cw = rnd(height * cut), rnd(width * cut)
    y0, x0 = cy - ch // 2, cx - cw // 2
    y1, x1 = (cy + ch // 2, cx + cw // 2) if end_half else (y0 + ch, x0 + cw)
    if clip:
        y0, y1 = (min(max(v, 0), height - hi_off) for v in (y0, y1))
        x0, x1 = (min(max(v, 0), width - hi_off) for v in (x0, x1))
    return (y0, y1, x0, x1) if order == "yyxx" else (y0, x0, y1, x1)


def _loss(out_g, out_l, targets, alpha, gamma, *, sg=True, mean=True, swap=False, crossed=True):
    def ce(z, p):
        return -(p * F.log_softmax(z, dim=1)).sum(dim=1).mean()

    def cos(u, h):
        return -F.cosine_similarity(u, h.detach() if sg else h, dim=1).mean()

    half = 0.5 if mean else 1.0
    l_c = half * (ce(out_g["logits"], targets["p_g"]) + ce(out_l["logits"], targets["p_l"]))
    l_cb = half * (ce(out_g["logits_cb"], targets["p_g_w"]) + ce(out_l["logits_cb"], targets["p_l_w"]))
    sim = (cos(out_g["u"], out_l["h"]) + cos(out_l["u"], out_g["h"]) if crossed
           else cos(out_g["u"], out_g["h"]) + cos(out_l["u"], out_l["h"]))
    a = 1 - alpha if swap else alpha
    return a * l_c + (1 - a) * l_cb + gamma * sim


def _rw(y_u, y_r, weight, class_weights, *, weights=True, overwrite=False, normalise=False):
    w = class_weights if weights else torch.ones_like(class_weights)
    p = torch.zeros(len(y_u), len(w))
    rows = torch.arange(len(y_u))
    if overwrite:
        p[rows, y_u] = weight * w[y_u]
        p[rows, y_r] = (1 - weight) * w[y_r]
    else:
        p[rows, y_u] += weight * w[y_u]
        p[rows, y_r] += (1 - weight) * w[y_r]
    return p / p.sum(1, keepdim=True) if normalise else p


def _knn(features, labels, k, *, leave_out=True, cosine=True):
    x = np.asarray(features, dtype=np.float64)
    if cosine:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = x @ x.T
    else:
        sim = -np.linalg.norm(x[:, None] - x[None], axis=-1)
    if leave_out:
        np.fill_diagonal(sim, -np.inf)
    nearest = np.argsort(-sim, axis=1)[:, :k]
    return float(np.mean([np.bincount(labels[r]).argmax() == y for r, y in zip(nearest, labels, strict=True)]))


def _weights(counts, k, *, normalise="C", sign=-1):
    w = np.asarray(counts, dtype=float) ** (sign * k)
    return w if normalise is None else w / w.sum() * (len(w) if normalise == "C" else 1)


PLANTED = [
    ("01.2", lambda counts, k: _weights(counts, k, normalise=None), "normalise"),
    ("01.2", lambda counts, k: _weights(counts, k, normalise=1), "not to 1"),
    ("01.2", lambda counts, k: _weights(counts, k, sign=1), "the exponent is −k"),
    ("01.2", lambda counts, k: _weights(counts, 1.0), "use the exponent k"),
    ("02.2", lambda h, w, lam, cy, cx: _box(h, w, lam, cy, cx, clip=False), "clip the box to the image"),
    ("02.2", lambda h, w, lam, cy, cx: _box(h, w, lam, cy, cx, rnd=int), "round the sides up"),
    ("02.2", lambda h, w, lam, cy, cx: _box(h, w, lam, cy, cx, end_half=True), "loses a pixel"),
    ("02.2", lambda h, w, lam, cy, cx: _box(h, w, lam, cy, cx, hi_off=1), "not to H − 1"),
    ("02.2", lambda h, w, lam, cy, cx: _box(h, w, lam, cy, cx, order="yxyx"), "in the order (y0, y1, x0, x1)"),
    ("02.3", lambda lam, box, h, w: lam, "λ is the authors' label"),
    ("02.3", lambda lam, box, h, w: 1 - math.ceil(h * math.sqrt(1 - lam)) * math.ceil(w * math.sqrt(1 - lam)) / (h * w),
     "not from the side lengths λ gives"),  # the area of the box before clipping
    ("02.3", lambda lam, box, h, w: mixing.box_area_fraction(mixing.Box(*box), h, w), "the partner's share"),
    ("02.4", lambda y_u, y_r, lam, w: _rw(y_u, y_r, lam, w, weights=False), "multiply each one-hot row"),
    ("02.4", lambda y_u, y_r, lam, w: _rw(y_u, y_r, lam, w, overwrite=True), "overwrote the first"),
    ("02.4", lambda y_u, y_r, lam, w: _rw(y_u, y_r, lam, w, normalise=True), "do not normalise the rows"),
    ("03.2", lambda og, ol, t, a, c: _loss(og, ol, t, a, c, sg=False), "the stop-gradient is missing"),
    ("03.2", lambda og, ol, t, a, c: _loss(og, ol, t, a, c, mean=False), "average the two mixtures"),
    ("03.2", lambda og, ol, t, a, c: _loss(og, ol, t, a, c, swap=True), "α weighs L_c"),
    ("03.2", lambda og, ol, t, a, c: _loss(og, ol, t, a, c, crossed=False), "cross the pairs"),
    ("04.2", lambda t, t_max: 1 - t / t_max, "that is the linear schedule"),
    ("04.2", lambda t, t_max: 1 - ((t + 1) / t_max) ** 2, "T counts from 0"),
    ("04.2", lambda t, t_max: (1 - t / t_max) ** 2, "not (1 − T/T_max)²"),
    ("05.2", lambda c, cb, s, a, g: (1 - a) * c + a * cb + g * s, "α weighs L_c"),
    ("05.2", lambda c, cb, s, a, g: a * c + (1 - a) * cb + s, "multiply L_sim by γ"),
    ("06.2", lambda x, y, k: _knn(x, y, k, leave_out=False), "leave each point out"),
    ("06.2", lambda x, y, k: _knn(x, y, k, cosine=False), "use the cosine similarity"),
    ("07.2", lambda z, y, n: F.cross_entropy(z - torch.log(torch.as_tensor(n, dtype=z.dtype)), y), "subtracting it"),
    ("07.2", lambda z, y, n: F.cross_entropy(z, y), "shift the logits by log n_c"),
]


@pytest.mark.parametrize("key, fn, hint", PLANTED, ids=[f"{k}-{h[:24]}" for k, _, h in PLANTED])
def test_a_planted_wrong_implementation_is_rejected_with_the_right_hint(key, fn, hint, capsys):
    result, out = _check(key, fn, capsys)
    assert result is False, out
    assert out.startswith(f"✗ Exercise {key}") and "differs from" in out and "Traceback" not in out
    assert "Hint: " in out and hint in out.split("Hint: ", 1)[1], out


def test_a_naive_softmax_overflows_on_large_logits_and_the_check_says_so(capsys):
    def naive(logits, targets, counts):
        z = logits + torch.log(torch.as_tensor(counts, dtype=logits.dtype))
        p = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
        return -torch.log(p[torch.arange(len(targets)), targets]).mean()

    result, out = _check("07.2", naive, capsys)
    assert result is False and "large logits" in out and "NaN or infinite" in out


def test_a_correct_function_written_differently_passes(capsys):
    def my_reweighted_labels(y_u, y_r, weight, class_weights):  # index assignment, done right, returned as lists
        return _rw(y_u, y_r, weight, class_weights).tolist()

    def my_cutmix_box(height, width, lam, cy, cx):  # numpy, a list, and an empty box written as zeros
        side = np.sqrt(1 - lam)
        ch, cw = int(np.ceil(height * side)), int(np.ceil(width * side))
        if ch == 0 or cw == 0:
            return [0, 0, 0, 0]
        y0, x0 = cy - ch // 2, cx - cw // 2
        return list(np.clip([y0, y0 + ch], 0, height)) + list(np.clip([x0, x0 + cw], 0, width))

    def my_glmc_loss(out_g, out_l, targets, alpha, gamma):  # returns (total, terms) like the package
        return losses.glmc_loss(out_g, out_l, targets, alpha, gamma)

    assert _check("02.4", my_reweighted_labels, capsys)[0] is True
    assert _check("02.2", my_cutmix_box, capsys)[0] is True
    assert _check("03.2", my_glmc_loss, capsys)[0] is True


def test_a_loss_without_gradient_is_told_so(capsys):
    def my_glmc_loss(out_g, out_l, targets, alpha, gamma):
        return losses.glmc_loss(out_g, out_l, targets, alpha, gamma)[0].item()

    result, out = _check("03.2", my_glmc_loss, capsys)
    assert result is False and "carries no gradient" in out


def test_the_loss_mix_checks_the_epochs_of_a_run(capsys):
    history = [{"epoch": e, "loss_c": 1.0 / e, "loss_cb": 2.0 / e, "loss_sim": -1.5, "alpha": 1 - (e / 4) ** 2}
               for e in (1, 2, 3)]
    n = len(exercises.EXERCISES["05.2"].cases())
    assert len(exercises.EXERCISES["05.2"].cases(history=history, gamma=2.0)) == n + 3
    result, out = _check("05.2", losses.cumulative_total, capsys, history=history, gamma=2.0)
    assert result is True and f"on {n + 3} cases" in out


def test_check_function_diagnoses_by_behaviour_on_every_case(capsys):
    """A mistake that agrees with the student's function on every case is preferred to one that agrees on the failing
    case only; with none, the general hint."""
    cases = [Case(lambda: {"x": 1.0}), Case(lambda: {"x": 2.0})]
    only_first = Mistake(lambda x: 0.0 if x == 1.0 else 5.0, "first only")
    both = Mistake(lambda x: 0.0, "both")
    assert check_function(lambda x: 0.0, lambda x: x, cases, label="E", ref_name="f", mistakes=[only_first, both],
                          hint="general") is False
    assert "Hint: both" in capsys.readouterr().out
    assert check_function(lambda x: -x, lambda x: x, cases, label="E", ref_name="f", mistakes=[only_first, both],
                          hint="general") is False
    assert "Hint: general" in capsys.readouterr().out
