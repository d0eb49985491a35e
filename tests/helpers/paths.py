"""Where the tests find the checkout, the bundled tiny assets and the shared real data."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: the tiny demo's model config, tokenizer and records, shipped inside the package
TINY = REPO / "rocoft_llm" / "recipes" / "tiny"
#: real LLM-Adapters test files beside the checkout (tests using them skip when absent)
SHARED_DATA = REPO.parent / "shared" / "data" / "llm_adapters"
#: the 14 LLM-Adapters test sets (catalog ids) that the real-file tests cover
LLM_ADAPTERS_TEST_SETS = [
    "boolq",
    "piqa",
    "siqa",
    "winogrande",
    "arc_easy",
    "arc_challenge",
    "openbookqa",
    "gsm8k",
    "svamp",
    "aqua",
    "multiarith",
    "addsub",
    "singleeq",
    "mawps",
]
