"""An evaluation's files are never silently replaced, and never mixed with an earlier one's.

``eval`` refuses a folder that already holds an evaluation of the same kind unless ``--overwrite`` is
given (``--out DIR`` writes beside it instead); before an evaluation writes its first file, the
earlier evaluation's files of that kind are removed, so no per-item file of a task that was not
evaluated again survives beside the new summary. The kinds (their files) are separate, so a
generation evaluation and an lm-eval one can share a folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import RoCoFTError

#: kind -> (the summary that marks an evaluation of that kind, the glob patterns of all its files)
KINDS = {
    "generation": ("summary.json", ("*.jsonl", "summary.json", "summary.md")),
    "lm-eval": ("lm_eval_summary.json", ("lm_eval_summary.json", "lm_eval_samples.json")),
}


def _described(summary: Path) -> str:
    """What the earlier evaluation was (when it was written, its tasks and item counts), for the refusal."""
    written = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.stat().st_mtime))
    try:
        entries = json.loads(summary.read_text())
    except (OSError, ValueError):
        entries = None
    if isinstance(entries, list):
        tasks = ", ".join(
            f"{e.get('task', '?')} ({e.get('n', '?')} items)" for e in entries[:6] if isinstance(e, dict)
        )
        return f"{summary.name} of {written}: {tasks}"
    return f"{summary.name} of {written}"


def check_eval_target(folder: str | Path, kind: str, overwrite: bool) -> None:
    """Refuse (before any model is loaded) to write a ``kind`` evaluation into ``folder`` when it holds
    one already and ``overwrite`` is not set."""
    marker = Path(folder) / KINDS[kind][0]
    if marker.is_file() and not overwrite:
        raise RoCoFTError(
            f"{folder} already holds an evaluation ({_described(marker)}); pass --overwrite to replace it "
            "(its files are removed first), or --out DIR to write this one beside it."
        )


def clear_eval_outputs(folder: str | Path, kind: str) -> list[Path]:
    """Remove the files of an earlier ``kind`` evaluation in ``folder``; returns what was removed."""
    folder = Path(folder)
    removed = []
    for pattern in KINDS[kind][1]:
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(path)
    return removed
