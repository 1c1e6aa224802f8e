"""The sparse training path (``train.optimizer: sparse_adam``): a step touches only the rows its batch uses.

With dense Adam a training step costs O(table): the optimizer updates every row of the entity and relation tables
(its moments move rows the batch never saw), and the LKGE regulariser adds a gradient to every old row. On the sparse
path:

- inside :meth:`evergraph.kg.engine.model.KGEModel.sparse_rows` every row a step reads (the batch's heads,
  relations and tails, its negatives, the autoencoder's sampled nodes and neighbours) is gathered as a leaf of its
  own (:class:`GatheredRows`); after ``backward`` their gradients are summed per row into one sparse gradient of
  each table, and a whole-table use inside the step is refused;
- :class:`LazyAdam` (lazy Adam, the update of :class:`torch.optim.SparseAdam`: the moments and the values of those
  rows only, one shared step count for the bias correction) applies it;
- the LKGE regulariser is added to the touched rows only (:func:`add_to_touched_rows`);
- in a ``torchrun`` job the sparse gradients are averaged over the union of the rows the processes touched
  (:func:`evergraph.kg.engine.distributed.average_gradients` with ``sparse=True``).

A row the batch does not touch is left bit for bit as it was (``tests/kg/test_sparse_training.py``). What differs
from dense Adam is the optimizer, not the loss: the loss of a batch and the gradients of its rows are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "OPTIMIZERS",
    "GatheredRows",
    "LazyAdam",
    "RowGradient",
    "add_to_touched_rows",
    "is_sparse",
    "make_optimizer",
]

OPTIMIZERS = ("adam", "sparse_adam")
"""What ``train.optimizer`` may name: ``adam`` (dense, every row every step) or ``sparse_adam`` (touched rows)."""


def is_sparse(kind: str) -> bool:
    """Whether optimizer ``kind`` takes sparse row gradients (so the step must gather rows sparsely)."""
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {kind!r}; choose one of: {', '.join(OPTIMIZERS)}")
    return kind != "adam"


def make_optimizer(parameters: list[torch.nn.Parameter], *, lr: float, kind: str = "adam") -> torch.optim.Optimizer:
    """``adam``: Adam, fused where this torch supports it on the parameters' device (much less work per step);
    ``sparse_adam``: :class:`LazyAdam` (the update of :class:`torch.optim.SparseAdam`), which needs every gradient
    sparse."""
    if is_sparse(kind):
        return LazyAdam(parameters, lr=lr)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(parameters, lr=lr, foreach=True)


class LazyAdam(torch.optim.Optimizer):
    """Lazy Adam over sparse row gradients: exactly :class:`torch.optim.SparseAdam`'s update (the moments and values
    of the rows in the gradient only; one step count per table for the bias correction), written with
    ``index_select``/``index_copy_``/``index_add_`` so that a step costs what its rows cost. torch's own
    ``SparseAdam`` step grows with the table on CPU (measured at dim 32: 8 ms at 20k entities, 27 ms at 200k for the
    same ~27k rows; ``sparse_mask`` of the dense moments); this one does not. Its state (``step``, ``exp_avg``,
    ``exp_avg_sq`` per table) is in :meth:`state_dict`, so a checkpoint resumes it."""

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise RuntimeError("LazyAdam takes sparse row gradients only; use optimizer 'adam' for dense ones")
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                grad = param.grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                if rows.numel() == 0:
                    continue
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                mean = exp_avg.index_select(0, rows).lerp_(values, 1 - beta1)
                square = exp_avg_sq.index_select(0, rows).mul_(beta2).addcmul_(values, values, value=1 - beta2)
                exp_avg.index_copy_(0, rows, mean)
                exp_avg_sq.index_copy_(0, rows, square)
                step = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                param.index_add_(0, rows, mean.div_(square.sqrt_().add_(group["eps"])), alpha=-step_size)
        return loss


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


class RowGradient:
    """The rows of one table gathered during a step, each gather a leaf of its own; after ``backward`` their
    gradients are summed per row into one sparse gradient of the table (one sort of the gathered ids and one
    ``index_add``: cheaper than autograd adding up sparse gradients gather by gather)."""

    def __init__(self, table: torch.nn.Parameter) -> None:
        self.table = table
        self._ids: list[torch.Tensor] = []
        self._leaves: list[torch.Tensor] = []

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        """The rows ``ids`` (any shape) of the table, ``[*ids.shape, width]``, as a leaf that records its gradient."""
        flat = ids.reshape(-1)
        leaf = self.table.detach().index_select(0, flat).requires_grad_(self.table.requires_grad)
        self._ids.append(flat)
        self._leaves.append(leaf)
        return leaf.view(*ids.shape, -1)

    def gradient(self) -> torch.Tensor:
        """The sparse, coalesced gradient of the table: the sum of the gathered rows' gradients per row id (rows
        gathered but unused in the loss are left out)."""
        used = [(ids, leaf.grad) for ids, leaf in zip(self._ids, self._leaves, strict=True) if leaf.grad is not None]
        width = self.table.shape[1:]
        if not used:
            rows = torch.empty(0, dtype=torch.long, device=self.table.device)
            values = torch.empty(0, *width, dtype=self.table.dtype, device=self.table.device)
        else:
            ids = torch.cat([ids for ids, _ in used])
            rows, slot = torch.unique(ids, return_inverse=True)
            values = torch.zeros(rows.shape[0], *width, dtype=self.table.dtype, device=self.table.device)
            values.index_add_(0, slot, torch.cat([grad for _, grad in used]))
        return torch.sparse_coo_tensor(
            rows.unsqueeze(0), values, self.table.shape, is_coalesced=True, check_invariants=False
        )


class GatheredRows:
    """What a sparse step gathered from the entity and the relation table
    (:meth:`evergraph.kg.engine.model.KGEModel.sparse_rows`)."""

    def __init__(self, *, entity: torch.nn.Parameter, relation: torch.nn.Parameter) -> None:
        self.entity = RowGradient(entity)
        self.relation = RowGradient(relation)

    def assign_gradients(self) -> None:
        """After ``backward``: set each table's ``.grad`` to the sparse gradient of its gathered rows. A table that
        already has a gradient was used densely inside the step (a whole-table term), which would touch every row:
        that is refused."""
        for rows in (self.entity, self.relation):
            if rows.table.grad is not None:
                raise RuntimeError(
                    "a sparse training step used a whole embedding table (it has a dense gradient); gather rows with "
                    "KGEModel.entity_rows/relation_rows, or train with optimizer 'adam'"
                )
            rows.table.grad = rows.gradient()
