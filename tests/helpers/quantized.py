"""A copy of a base model directory whose config says it is stored already quantized by
bitsandbytes: what `merge` and `export-peft` must refuse to take for the full-precision base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def packed_nf4_copy(base: Path, target: Path) -> Path:
    """``base`` copied to ``target`` with an NF4 ``quantization_config`` in its config.json."""
    shutil.copytree(base, target)
    config = json.loads((target / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
    }
    (target / "config.json").write_text(json.dumps(config))
    return target
