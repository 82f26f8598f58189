"""Metrics: counts into confusion, per class, groups and percentages; predictions; one number formatter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from glmc_core.metrics import (
    confusion_matrix,
    format_number,
    group_accuracy,
    per_class_accuracy,
    predict,
    summarize,
)

TARGETS = [0, 0, 0, 0, 1, 1, 2, 2]
PREDS = [0, 0, 0, 1, 1, 0, 0, 0]
GROUPS = np.array(["many", "medium", "few", "few"])  # class 3 has no test images


def test_confusion_rows_are_true_classes():
    cm = confusion_matrix(TARGETS, PREDS, 4)
    assert cm.sum() == len(TARGETS) and cm[0].tolist() == [3, 1, 0, 0] and cm[2].tolist() == [2, 0, 0, 0]
    acc = per_class_accuracy(cm)
    assert acc[:3].tolist() == [0.75, 0.5, 0.0] and math.isnan(acc[3])


def test_group_accuracy_averages_classes_and_skips_empty_ones():
    acc = np.array([0.75, 0.5, 0.0, np.nan])
    assert group_accuracy(acc, GROUPS) == {"many": 0.75, "medium": 0.5, "few": 0.0}
    assert group_accuracy(acc, np.array(["many", "many", "many", "few"]))["few"] is None


def test_summarize_in_percent_with_none_for_what_does_not_exist():
    s = summarize(TARGETS, PREDS, 4, GROUPS)
    assert s["top1"] == pytest.approx(100 * 4 / 8)
    assert (s["many"], s["medium"], s["few"]) == (75.0, 50.0, 0.0)
    assert s["per_class"] == [75.0, 50.0, 0.0, None]


@pytest.mark.parametrize("value,spec,text", [(None, "5.1f", "  n/a"), (float("nan"), "6.2f", "   n/a"),
                                             (12.345, "5.1f", " 12.3"), (None, ".2f", "n/a"), (3.0, ".2f", "3.00")])
def test_format_number_keeps_columns_aligned(value, spec, text):
    assert format_number(value, spec) == text


class _Fixed(torch.nn.Module):
    """A 'model' whose inference head scores class = the first input value."""

    inference_head = "fc"

    def predict(self, x):
        return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 3).float()


def test_predict_reads_the_inference_head_from_the_given_batches():
    batches = [(torch.tensor([2.0, 0.0]).view(2, 1, 1, 1), torch.tensor([2, 1])),
               (torch.tensor([1.0]).view(1, 1, 1, 1), torch.tensor([1]))]
    model = _Fixed().train()
    t, p = predict(model, None, None, None, "cpu", batches=iter(batches))
    assert t.tolist() == [2, 1, 1] and p.tolist() == [2, 0, 1] and not model.training
