"""What a finetuning method is: one object that owns everything that differs between methods.

The training run, the checkpoint signature, evaluation and the recipe checks ask the method object
(looked up by the recipe's ``method`` name in :mod:`rocoft_llm.methods`) and never compare method
names. A new method is one subclass plus one ``register`` call, with no edits elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar


class Method:
    """A finetuning method. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    """The recipe's ``method:`` value."""
    output_folder: ClassVar[str]
    """Folder inside ``output.dir`` that holds the run's product (adapter or model)."""
    section: ClassVar[str | None] = None
    """Recipe section with this method's settings (``rocoft``, ``lora``), or None."""
    resume_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of ``section`` whose change makes a checkpoint meaningless for a new run."""
    trains_all_weights: ClassVar[bool] = False
    """The backward computes every weight gradient (6N FLOPs per token instead of 4N)."""
    mergeable: ClassVar[bool] = False
    """``output.merge: true`` writes a merged model directory after training."""

    # ---- training -------------------------------------------------------------------------------
    def needs_calibration(self, recipe) -> bool:
        """Whether ``prepare`` needs calibration micro-batches (activation-scored selection)."""
        return False

    def prepare(self, model, recipe, calibration=None):
        """Mark the trainable parameters of ``model`` (in place or wrapped); returns the model."""
        raise NotImplementedError

    def save(self, module, target: Path, recipe, metadata: dict) -> None:
        """Write the run's product to ``target``. Called on every rank (gathers are collective)."""
        raise NotImplementedError

    def merge_after_training(self, recipe, out: Path) -> None:
        """Write ``out/merged`` (only called when ``mergeable`` and ``output.merge`` is set)."""

    # ---- evaluation -----------------------------------------------------------------------------
    def load(self, folder: Path, load_base: Callable[[], Any], dtype: str, device: str):
        """The trained model for evaluation: ``(model, sha256 of the product's weights or None)``.
        ``load_base()`` returns the base model with its recipe's dtype, seed and device."""
        raise NotImplementedError

    def peft_export_problem(self, run_dir: Path) -> str | None:
        """Why this method's run has no RoCoFT adapter to export as peft LoRA (None: it has one)."""
        return (
            f"{run_dir} is a {self.name!r} run, not a RoCoFT run: it has no RoCoFT adapter to export "
            f"(its {self.output_folder}/ is what it trained)."
        )

    def full_precision_problem(self, folder: Path) -> str | None:
        """Why this method's product in ``folder``, trained on a quantized base, cannot be served on
        the unquantized one (``eval --full-precision-base``); None: it can (a LoRA's deltas can)."""
        return None

    # ---- recipe checks --------------------------------------------------------------------------
    def targets(self, recipe) -> list[str] | None:
        """The recipe's explicit targets (None = the architecture table's)."""
        return getattr(getattr(recipe, self.section), "targets", None) if self.section else None

    def check(self, recipe, problems: list[str], warnings: list[str]) -> None:
        """Cross-field checks of this method's settings that need no model."""

    def check_shapes(self, recipe, config, arch, shapes: dict, targets: list[str], result) -> None:
        """Checks against the model's linear shapes (``result`` is a ``config.checks.CheckResult``)."""
