"""Training across processes with ``torch.distributed``: data parallel, launched by ``torchrun``.

Run ``torchrun --standalone --nproc-per-node N -m evergraph.kg.service.cli train --data D --out O`` (gloo on
CPU; NCCL with one GPU a process on CUDA, ``--device cuda``). Every process runs the same engine with the same
seed on the same data, so everything random (batch order, negatives, autoencoder samples, new rows) is drawn
identically everywhere. Each step's batch is split by rows: a process computes the link-prediction loss of its
share (the bulk of a step), the LKGE autoencoder term on the whole batch (as one process would), and one
all-reduce averages the gradients; every process then applies the same update, so the embedding rows stay
identical without ever sending parameters, and the run learns what one process learns (up to float rounding).
The regulariser's closed-form gradient is added after the all-reduce, once, on every process alike. On the sparse
path (``train.optimizer: sparse_adam``) the processes all-gather the ids of the rows they touched and all-reduce
those rows only.

What is not sharded: validation and the final evaluation run on every process (they decide early stopping, so
each must see the same numbers); only rank 0 writes ``OUT``, the others keep their checkpoints under
``OUT/ranks/<rank>`` (:meth:`evergraph.kg.engine.run_files.RunPaths.rank_dir`) so an interrupted run resumes on
every rank.

When it pays: on N GPUs, when the link-prediction term dominates a step (large batches, many negatives, large
``dim``); one all-reduce of the embedding gradients a step costs about the table's size over the interconnect.
On a CPU whose cores one process already uses (intra-op threads), N processes gain little.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

__all__ = [
    "ProcessGroup",
    "average_gradients",
    "current_group",
    "init_from_env",
    "shard",
    "shutdown",
    "sum_over_processes",
]


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the job: ``rank`` of ``world_size`` (and ``local_rank`` on its machine)."""

    rank: int
    world_size: int
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.rank == 0


def current_group() -> ProcessGroup | None:
    """The initialised process group of more than one process, else ``None`` (a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return ProcessGroup(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0))
    )


def init_from_env(device: torch.device) -> tuple[ProcessGroup | None, torch.device]:
    """Join the job ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1): gloo on CPU, NCCL on CUDA
    with the process's own GPU (``LOCAL_RANK``). Returns the group (``None`` outside a job) and the device."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None, device
    if not dist.is_available():
        raise RuntimeError("this torch has no torch.distributed; run one process, or install a torch that has it")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    group = current_group()
    assert group is not None
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    logger.info("process %d of %d (%s, %s)", group.rank, group.world_size, dist.get_backend(), device)
    return group, device


def shard(rows: torch.Tensor, group: ProcessGroup | None) -> torch.Tensor:
    """This process's share of ``rows`` (every ``world_size``-th row from ``rank``); all of them alone."""
    return rows if group is None else rows[group.rank :: group.world_size]


def average_gradients(
    parameters: list[torch.nn.Parameter], group: ProcessGroup | None, *, sparse: bool = False
) -> None:
    """Average the gradients of ``parameters`` over the processes (one all-reduce each; a missing gradient
    counts as zeros, so every process takes part in every collective).

    ``sparse=True`` (the sparse training path, :mod:`evergraph.kg.engine.sparse`): the gradients are sparse row
    gradients; the processes agree on the union of the rows they touched (one all-gather of row ids) and
    all-reduce the values of those rows only, so the traffic follows the batch, not the table. Every process
    ends with the same sparse gradient over that union."""
    if group is None:
        return
    for param in parameters:
        if sparse:
            param.grad = _average_sparse(param, group)
            continue
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(group.world_size)


def _average_sparse(param: torch.nn.Parameter, group: ProcessGroup) -> torch.Tensor:
    """The mean over the processes of ``param``'s sparse row gradient (none counts as no rows), over the union of
    their rows."""
    device, width = param.device, param.shape[1]
    if param.grad is None:
        rows = torch.empty(0, dtype=torch.long, device=device)
        values = torch.empty(0, width, dtype=param.dtype, device=device)
    else:
        if not param.grad.is_sparse:
            raise RuntimeError("sparse gradient averaging got a dense gradient; the sparse path must gather rows")
        grad = param.grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
    longest = torch.tensor([rows.numel()], device=device)
    dist.all_reduce(longest, op=dist.ReduceOp.MAX)
    padded = torch.full((int(longest.item()),), -1, dtype=torch.long, device=device)
    padded[: rows.numel()] = rows
    gathered = [torch.empty_like(padded) for _ in range(group.world_size)]
    dist.all_gather(gathered, padded)
    union = torch.unique(torch.cat(gathered))  # sorted
    union = union[union >= 0]
    summed = torch.zeros(union.numel(), width, dtype=param.dtype, device=device)
    summed.index_add_(0, torch.searchsorted(union, rows), values)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    summed.div_(group.world_size)
    return torch.sparse_coo_tensor(union.unsqueeze(0), summed, param.shape, is_coalesced=True, check_invariants=False)


def sum_over_processes(value: float, group: ProcessGroup | None, *, device: torch.device) -> float:
    """``value`` summed over the processes (for reporting, e.g. an epoch's loss)."""
    if group is None:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item())


def shutdown() -> None:
    """Leave the job (when one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
