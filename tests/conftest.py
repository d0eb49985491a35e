import pytest

from tests.helpers.paths import SHARED_DATA


@pytest.fixture
def shared_data():
    """The real LLM-Adapters test files beside the checkout; tests using them skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA
