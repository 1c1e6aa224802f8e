"""The sparse training path (``train.optimizer: sparse_adam``): a step touches only the rows its batch uses.

With dense Adam a training step costs O(table): the optimizer updates every row of the entity and relation tables
(its moments move rows the batch never saw), and the LKGE regulariser adds a gradient to every old row. On the sparse
path:

- the tables are read through :meth:`evergraph.kg.engine.model.KGEModel.sparse_rows`, so ``backward`` leaves a
  sparse gradient holding only the gathered rows (the batch's heads, relations and tails, its negatives, the
  autoencoder's sampled nodes and neighbours);
- :class:`torch.optim.SparseAdam` (lazy Adam: the moments and the values of those rows only, one shared step count
  for the bias correction) applies it;
- the LKGE regulariser is added to the touched rows only (:func:`add_to_touched_rows`);
- in a ``torchrun`` job the sparse gradients are averaged over the union of the rows the processes touched
  (:func:`evergraph.kg.engine.distributed.average_gradients` with ``sparse=True``).

A row the batch does not touch is left bit for bit as it was (``tests/kg/test_sparse_training.py``). What differs
from dense Adam is the optimizer, not the loss: the loss of a batch and the gradients of its rows are the same.
"""

from __future__ import annotations

import torch

__all__ = ["OPTIMIZERS", "add_to_touched_rows", "fill_missing_gradients", "is_sparse", "make_optimizer"]

OPTIMIZERS = ("adam", "sparse_adam")
"""What ``train.optimizer`` may name: ``adam`` (dense, every row every step) or ``sparse_adam`` (touched rows)."""


def is_sparse(kind: str) -> bool:
    """Whether optimizer ``kind`` takes sparse row gradients (so the step must gather rows sparsely)."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return kind != "adam"


def make_optimizer(parameters: list[torch.nn.Parameter], *, lr: float, kind: str = "adam") -> torch.optim.Optimizer:
    """``adam``: Adam, fused where this torch supports it on the parameters' device (much less work per step);
    ``sparse_adam``: :class:`torch.optim.SparseAdam`, which needs every gradient sparse."""
    if is_sparse(kind):
        return torch.optim.SparseAdam(parameters, lr=lr)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(parameters, lr=lr, foreach=True)


@torch.no_grad()
def add_to_touched_rows(
    grad: torch.Tensor, param: torch.Tensor, old: torch.Tensor, weights: torch.Tensor, *, scale: float
) -> torch.Tensor:
    """``grad`` (sparse, rows of ``param``) plus ``scale * weights[x] * (param[x] - old[x])`` on the rows ``x`` it
    holds that ``old`` has (rows appended since ``old`` was taken are free): the gradient of ``scale / 2 * sum_x
    weights_x ||x - x_old||^2`` restricted to the touched rows, at a cost that follows them (nothing here reads a
    whole table). Returns a coalesced sparse tensor with the same rows."""
    grad = grad.coalesce()
    rows, values = grad.indices()[0], grad.values().clone()
    kept = torch.nonzero(rows < old.shape[0]).squeeze(1)
    ids = rows.index_select(0, kept)
    drift = param.detach().index_select(0, ids) - old.index_select(0, ids)
    pull = (scale * weights.index_select(0, ids)).unsqueeze(1).to(drift.dtype)
    values.index_add_(0, kept, drift * pull)
    return torch.sparse_coo_tensor(grad.indices(), values, grad.shape, is_coalesced=True, check_invariants=False)


def fill_missing_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Give every parameter without a gradient an empty sparse one (no rows), so everything after ``backward``
    (the regulariser's rows, the optimizer) sees sparse gradients only."""
    for param in parameters:
        if param.grad is None:
            rows = torch.empty(1, 0, dtype=torch.long, device=param.device)
            values = torch.empty(0, *param.shape[1:], dtype=param.dtype, device=param.device)
            param.grad = torch.sparse_coo_tensor(rows, values, param.shape, is_coalesced=True, check_invariants=False)
