"""Where a module's trainable values live inside its weight: one :class:`Placement` per RoCoFT mode.

The layer, merging, the adapter checks and the peft export all read, write and differentiate the
trainable part of a weight through these functions, so each mode is declared once:

* ``row``: r output rows, one slice ``(r, in)``;
* ``column``: r input columns, one slice ``(out, r)``;
* ``row_column``: r rows AND r columns. The rows own the entries where they cross the columns, so
  the column slice holds only the other rows: ``(out - r, r)``. No entry is parameterised twice
  (``delta W`` = rows' delta + columns' delta, a rank-2r update);
* ``entries``: a seeded set of single entries (flat indices into the weight), one vector ``(k,)``.
  The paper's random-entry variant: its gradient needs the full ``grad_y^T @ x`` product, so it costs
  what full finetuning's weight gradient costs (it is there as a reference, not for speed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ROW = "row"
COLUMN = "column"
ROW_COLUMN = "row_column"
ENTRIES = "entries"
MODES = (ROW, COLUMN, ROW_COLUMN, ENTRIES)
#: modes whose update has an exact low-rank (LoRA) form
LOW_RANK_MODES = (ROW, COLUMN, ROW_COLUMN)
#: trainable parameter names of a wrapped module, per mode (the adapter's tensor names end in them)
SLICE_NAME = "rocoft_slice"
COLUMN_SLICE_NAME = "rocoft_column_slice"


def slice_names(mode: str) -> tuple[str, ...]:
    return (SLICE_NAME, COLUMN_SLICE_NAME) if mode == ROW_COLUMN else (SLICE_NAME,)


def other_rows(n_rows: int, rows: torch.Tensor) -> torch.Tensor:
    """The rows not in ``rows``, ascending: where a row_column module's column slice lives."""
    keep = torch.ones(n_rows, dtype=torch.bool, device=rows.device)
    keep[rows] = False
    return torch.nonzero(keep).reshape(-1)


@dataclass(frozen=True)
class Placement:
    """The indices of one module's trainable values. ``index``: rows (row, row_column), columns
    (column) or flat entries (entries); ``column_index``: row_column's columns; ``rest``: row_column's
    rows outside ``index`` (derived, see :func:`make_placement`)."""

    mode: str
    index: torch.Tensor
    column_index: torch.Tensor | None = None
    rest: torch.Tensor | None = None

    def read(self, weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The values at the placement, one tensor per slice name (copies)."""
        if self.mode == ROW:
            return (weight.index_select(0, self.index),)
        if self.mode == COLUMN:
            return (weight.index_select(1, self.index),)
        if self.mode == ENTRIES:
            return (weight.reshape(-1).index_select(0, self.index),)
        return (
            weight.index_select(0, self.index),
            weight.index_select(0, self.rest).index_select(1, self.column_index),
        )

    def write(self, weight: torch.Tensor, slices: tuple[torch.Tensor, ...]) -> None:
        """Write ``slices`` into ``weight`` in place (no autograd)."""
        with torch.no_grad():
            if self.mode == COLUMN:
                weight.index_copy_(1, self.index, slices[0].to(weight.dtype))
                return
            if self.mode == ENTRIES:
                if not weight.is_contiguous():
                    raise RuntimeError(
                        "entries mode writes through a flat view: the weight must be contiguous"
                    )
                weight.view(-1).index_copy_(0, self.index, slices[0].to(weight.dtype))
                return
            weight.index_copy_(0, self.index, slices[0].to(weight.dtype))
            if self.mode == ROW_COLUMN:
                weight.index_put_(
                    (self.rest.unsqueeze(1), self.column_index.unsqueeze(0)), slices[1].to(weight.dtype)
                )

    def saved_input(self, x: torch.Tensor) -> torch.Tensor:
        """What backward needs of the layer input: all of x, except for columns (only x[..., idx])."""
        return x.index_select(-1, self.index) if self.mode == COLUMN else x

    def gradients(self, gy: torch.Tensor, saved: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each slice's gradient from the output gradient and :meth:`saved_input`, both flattened to
        ``(tokens, features)``; never the full weight gradient except for ``entries``."""
        if self.mode == ROW:
            return (gy.index_select(1, self.index).t() @ saved,)
        if self.mode == COLUMN:
            # (x_idx^T @ gy)^T, not gy^T @ x_idx: the same numbers, a ~3x faster skinny GEMM on CPU
            return ((saved.t() @ gy).t(),)
        if self.mode == ENTRIES:
            return ((gy.t() @ saved).reshape(-1).index_select(0, self.index),)
        rows = gy.index_select(1, self.index).t() @ saved
        columns = (saved.index_select(1, self.column_index).t() @ gy.index_select(1, self.rest)).t()
        return rows, columns


def make_placement(
    mode: str, index: torch.Tensor, shape: tuple[int, int], column_index: torch.Tensor | None = None
) -> Placement:
    """A checked :class:`Placement` for a weight of ``shape`` (out, in): indices sorted, distinct and in
    range; ``ValueError`` naming the problem otherwise."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    out_f, in_f = shape
    limit = {ROW: out_f, COLUMN: in_f, ROW_COLUMN: out_f, ENTRIES: out_f * in_f}[mode]
    index = _sorted_checked(index, limit, "indices")
    if mode != ROW_COLUMN:
        if column_index is not None:
            raise ValueError(f"mode {mode!r} takes no column indices")
        return Placement(mode, index)
    if column_index is None:
        raise ValueError("mode 'row_column' needs column indices")
    column_index = _sorted_checked(column_index, in_f, "column indices")
    return Placement(mode, index, column_index, other_rows(out_f, index))


def _sorted_checked(index: torch.Tensor, limit: int, what: str) -> torch.Tensor:
    index = torch.sort(torch.as_tensor(index).to(dtype=torch.long).reshape(-1)).values
    if (
        index.numel() == 0
        or index[0] < 0
        or index[-1] >= limit
        or torch.unique(index).numel() != index.numel()
    ):
        shown = index.tolist()[:8]
        raise ValueError(f"{what} must be distinct and in [0, {limit}), got {shown}")
    return index


def slice_shapes(
    mode: str, shape: tuple[int, int], n_index: int, n_columns: int = 0
) -> list[tuple[int, ...]]:
    """The trainable tensors' shapes for a weight of ``shape`` with ``n_index`` primary indices."""
    out_f, in_f = shape
    if mode == ROW:
        return [(n_index, in_f)]
    if mode == COLUMN:
        return [(out_f, n_index)]
    if mode == ENTRIES:
        return [(n_index,)]
    return [(n_index, in_f), (out_f - n_index, n_columns)]


def entries_count(density: float, shape: tuple[int, int]) -> int:
    """Entries of one weight that ``density`` p selects: round(p * numel), at least 1."""
    return max(1, round(density * shape[0] * shape[1]))
