"""Fixtures shared by the hostile-input tables."""

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.recipes import tiny_recipe


@pytest.fixture(scope="session")
def adapter(tmp_path_factory):
    """A real RoCoFT adapter directory, trained once (export-peft reads its config before --out)."""
    root = tmp_path_factory.mktemp("adapter")
    result = run_cli("train", tiny_recipe(root, "run", train={"max_steps": 1, "warmup_steps": 0}))
    assert result.exit_code == 0, result.output
    return root / "run" / "adapter"
