"""The package's functions shown as source in the notebooks (glmc_core.notebook.source)."""

import pytest

from glmc_core import losses, mixing
from glmc_core.notebook import show_source, source_text


def test_source_is_the_code_that_trains_headed_by_its_module():
    text = source_text(mixing.global_mix, losses.glmc_loss)
    assert text.startswith("# glmc_core.mixing.global_mix\ndef global_mix(")
    assert "# glmc_core.losses.glmc_loss\ndef glmc_loss(" in text
    assert "return lam * x_u + (1.0 - lam) * x_r" in text


def test_show_source_prints_outside_ipython_and_needs_a_function(capsys):
    assert show_source(mixing.local_mix) is None
    assert capsys.readouterr().out.strip() == source_text(mixing.local_mix)
    with pytest.raises(ValueError):
        source_text()
