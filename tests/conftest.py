import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "eval"))
sys.path.insert(0, str(Path(__file__).parent / "train"))
sys.path.insert(0, str(Path(__file__).parent / "slurm"))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_data():
    """The real LLM-Adapters test files beside the checkout; tests using them skip when absent."""
    path = SHARED / "data" / "llm_adapters"
    if not path.is_dir():
        pytest.skip("../shared/data/llm_adapters is not present")
    return path
