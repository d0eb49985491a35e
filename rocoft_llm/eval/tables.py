"""Markdown tables of evaluation summaries: one model's results, or base vs adapted side by side.

Every accuracy is shown with its 95% Wilson interval and n, beside the task's majority-label and
chance rates on the same items, the most frequent prediction, and which items were scored
(held-out mode: how many were excluded as seen in training). Label tasks add the balanced accuracy
beside the level every constant answer gets on it (:func:`..summaries.balanced_accuracy`); math
tasks add the "equation recomputed" diagnostic (:mod:`.equations`)."""

from __future__ import annotations


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def acc_ci(cell: dict | None) -> str:
    """``"63.0% (56.1-69.4)"`` for a ``{accuracy, ci95}`` cell."""
    if not cell:
        return "-"
    lo, hi = cell["ci95"]
    return f"{100 * cell['accuracy']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})"


def baseline_cells(s: dict) -> tuple[str, str]:
    b = s.get("baselines") or {}
    majority = (
        f"{pct(b.get('majority_rate'))} ({b['majority_label']})"
        if b.get("majority_label") is not None
        else "-"
    )
    return majority, pct(b.get("chance_rate"))


def diagnostic_cell(s: dict) -> str:
    """The single-model table's diagnostic: balanced accuracy (label tasks) or equation recomputed (math)."""
    if s.get("balanced"):
        balanced, constant = balanced_cells(s)
        return f"balanced {balanced} (any constant answer {constant})"
    if s.get("equation_recomputed"):
        return f"equation recomputed {acc_ci(s['equation_recomputed'])}"
    return "-"


def balanced_cells(s: dict) -> tuple[str, str]:
    """(balanced accuracy, the constant-answer level) of a label task's summary, or ("-", "-")."""
    b = s.get("balanced")
    return (pct(b["accuracy"]), pct(b["constant_answer"])) if b else ("-", "-")


def items_cell(s: dict) -> str:
    """Which items were scored: ``n``, of how many when --limit cut them ("4 of 395 (--limit)"), and in
    held-out mode how many were excluded as seen in training."""
    mode = s.get("evaluation_mode")
    if not mode:
        return str(s["n"])
    excluded = s.get("excluded_seen_in_training", 0)
    available = s.get("available_items")
    if s.get("limit") and available is not None and s["n"] < available:
        held_out = " held-out" if mode == "held-out" else ""
        return f"{s['n']} of {available}{held_out} (--limit" + (
            f"; {excluded} seen in training excluded)" if excluded else ")"
        )
    return f"{s['n']} ({mode}" + (f", {excluded} seen in training excluded)" if excluded else ")")


def top_cell(s: dict) -> str:
    top = s.get("top_prediction")
    if not top:
        return "-"
    pred = str(top["pred"] or "(none)").replace("|", "\\|").replace("\n", " ")  # one table cell
    return f"{pred} x{top['count']}"


def markdown_table(summaries: list[dict], title: str) -> str:
    lines = [
        f"### {title}",
        "",
        "| task | protocol | n (items scored) | protocol acc (95% CI) | strict acc (95% CI) "
        "| diagnostic | majority rate | chance | top prediction | hit max_new_tokens | flags |",
        "|---|---|---|---|---|---|---:|---:|---|---:|---|",
    ]
    for s in summaries:
        majority, chance = baseline_cells(s)
        flag = "CONTAMINATED: " + ", ".join(s["contaminated_by"]) if s.get("contaminated_by") else ""
        lines.append(
            f"| {s['task']} | {s.get('protocol_name', '')} | {items_cell(s)} | {acc_ci(s.get('protocol'))} | "
            f"{acc_ci(s.get('strict'))} | {diagnostic_cell(s)} | {majority} | {chance} | {top_cell(s)} | "
            f"{s.get('hit_max_new_tokens', '-')} | {flag} |"
        )
    return "\n".join(lines) + "\n"


def before_after_table(before: list[dict], after: list[dict]) -> str:
    """Base vs adapted on the same items, with intervals, n and the baselines of those items."""
    lines = [
        "| task | metric | n (items scored) | base (95% CI) | adapted (95% CI) | majority rate | chance "
        "| top prediction base -> adapted |",
        "|---|---|---|---|---|---:|---:|---|",
    ]
    for b, a in zip(before, after):
        majority, chance = baseline_cells(a)
        for name in ("protocol", "strict"):
            if name in a:
                lines.append(
                    f"| {a['task']} | {name} | {items_cell(a)} | {acc_ci(b.get(name))} | {acc_ci(a.get(name))} "
                    f"| {majority} | {chance} | {top_cell(b)} -> {top_cell(a)} |"
                )
        if a.get("balanced"):
            constant = balanced_cells(a)[1]
            lines.append(
                f"| {a['task']} | balanced (protocol) | {items_cell(a)} | {balanced_cells(b)[0]} | "
                f"{balanced_cells(a)[0]} | any constant answer: {constant} | {chance} | |"
            )
        if a.get("equation_recomputed"):
            lines.append(
                f"| {a['task']} | equation recomputed (diagnostic) | {items_cell(a)} | "
                f"{acc_ci(b.get('equation_recomputed'))} | {acc_ci(a['equation_recomputed'])} | {majority} | - | |"
            )
    return "\n".join(lines) + "\n"


def models_table(models: dict[str, list[dict]], title: str) -> str:
    """Several models on the same items, side by side: rows task x metric, columns n, the majority
    and chance rates, then every model (accuracy with its 95% interval)."""
    names = list(models)
    lines = [
        f"#### {title}",
        "",
        "| task | metric | n | majority rate | chance | " + " | ".join(names) + " |",
        "|---|---|---:|---:|---:|" + "---|" * len(names),
    ]

    def row(i: int, label: str, cell, first: str, s: dict, chance: str, n: str) -> str:
        cells = [cell(models[m][i]) if i < len(models[m]) else "-" for m in names]
        return f"| {s['task']} | {label} | {n} | {first} | {chance} | " + " | ".join(cells) + " |"

    for i, s in enumerate(models[names[0]]):
        majority, chance = baseline_cells(s)
        metrics = (
            [("protocol", f"{s.get('harness_task', '')} {s.get('metric', '')}".strip())]
            if "strict" not in s
            else [("protocol", "protocol"), ("strict", "strict")]
        )
        for key, label in metrics:
            lines.append(row(i, label, lambda x, k=key: acc_ci(x.get(k)), majority, s, chance, s["n"]))
        if s.get("balanced"):  # any constant answer scores exactly 1/K here: above it is task skill
            constant = balanced_cells(s)[1]
            lines.append(
                row(
                    i,
                    "balanced (protocol)",
                    lambda x: balanced_cells(x)[0],
                    f"any constant answer {constant}",
                    s,
                    chance,
                    s["n"],
                )
            )
        if s.get("equation_recomputed"):  # did the model set up the right computation (math only)
            lines.append(
                row(
                    i,
                    "equation recomputed (diagnostic)",
                    lambda x: acc_ci(x.get("equation_recomputed")),
                    majority,
                    s,
                    "-",
                    s["n"],
                )
            )
        if "strict" in s:
            lines.append(row(i, "top prediction", top_cell, "", s, "", ""))
    return "\n".join(lines) + "\n"


def pooled_line(models: dict[str, list[dict]], key: str = "protocol") -> str:
    """Accuracy pooled over all items of all tasks per model, beside the pooled majority-label rate."""
    from .intervals import accuracy_cell

    first = next(iter(models.values()))
    n = sum(s["n"] for s in first)
    out = []
    for name, summaries in models.items():
        correct = sum(s[key]["correct"] for s in summaries if s.get(key))
        out.append(f"{name} {acc_ci(accuracy_cell(correct, sum(s['n'] for s in summaries)))}")
    majority = sum(
        round(s["baselines"]["majority_rate"] * s["n"])
        for s in first
        if (s.get("baselines") or {}).get("majority_rate") is not None
    )
    return (
        f"pooled over {n} items ({key}): "
        + "; ".join(out)
        + f"; majority-label rate {pct(majority / max(n, 1))}"
    )


def render_tables(tables: dict, out_dir) -> str:
    """`eval`'s closing table: the results, or a before (base) / after (adapted) comparison."""
    after = tables["after"]
    if "before" not in tables:
        return markdown_table(after, "results") + f"\nwritten to {out_dir}"
    return before_after_table(tables["before"], after) + f"\nwritten to {out_dir} (base/ and adapted/)"
