"""The negative half of the self-adversarial negative-sampling loss (Sun et al. 2019), shared by training's
link-prediction loss and LKGE's replay term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["negative_sampling_term"]


def negative_sampling_term(scores: torch.Tensor, *, metric: str, margin: float, temperature: float) -> torch.Tensor:
    """``-mean_b sum_i p_i log s(logit_i)`` over negative ``scores [b, k]`` (higher is more plausible), with
    ``p = softmax(temperature * scores)`` (detached; uniform when ``temperature`` is 0) and the logit
    ``-score - margin`` (the L2 distance less the margin) for ``l2`` interactions, ``-score`` for inner-product ones."""
    if temperature > 0:
        weights = torch.softmax(temperature * scores.detach(), dim=1)
    else:
        weights = torch.full_like(scores, 1.0 / scores.shape[1])
    logits = -scores if metric == "inner_product" else -scores - margin
    return -(weights * F.logsigmoid(logits)).sum(1).mean()
