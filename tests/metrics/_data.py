"""Random outputs of many shapes and class counts, for differential tests against pytorch-ignite."""

from __future__ import annotations

import random

import torch

Batch = tuple[torch.Tensor, torch.Tensor]


def classification_batches(kind: str, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    classes, extra = rng.randint(2, 6), [rng.randint(1, 3)] * rng.randint(0, 2)
    batches = []
    for _ in range(rng.randint(1, 5)):
        n = rng.randint(1, 9)
        if kind == "binary":
            batches.append(
                (torch.randint(0, 2, (n, *extra), generator=g), torch.randint(0, 2, (n, *extra), generator=g))
            )
        elif kind == "multiclass":
            batches.append(
                (torch.rand(n, classes, *extra, generator=g), torch.randint(0, classes, (n, *extra), generator=g))
            )
        else:
            shape = (n, classes, *extra)
            batches.append((torch.randint(0, 2, shape, generator=g), torch.randint(0, 2, shape, generator=g)))
    return batches


def regression_batches(seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    tail = rng.choice([(), (1,), (3,)])
    return [(torch.randn(n, *tail, generator=g), torch.randn(n, *tail, generator=g)) for n in [rng.randint(1, 9)] * 3]


def scores_batches(seed: int, k: int) -> list[Batch]:
    """``(N, C)`` scores with ``C >= k`` and ``(N,)`` classes."""
    g = torch.Generator().manual_seed(seed)
    classes = random.Random(seed).randint(k, k + 4)
    return [(torch.rand(n, classes, generator=g), torch.randint(0, classes, (n,), generator=g)) for n in (5, 9, 1)]


def ranking_batches(seed: int, labels: int) -> list[Batch]:
    """Scores rounded so that some tie, against 0/1 targets: ``(N,)`` or ``(N, labels)``; both classes occur."""
    g = torch.Generator().manual_seed(seed)
    shape = (lambda n: (n,)) if labels == 0 else (lambda n: (n, labels))
    batches = [
        (torch.rand(shape(n), generator=g).round(decimals=1), torch.randint(0, 2, shape(n), generator=g))
        for n in (7, 20, 13)
    ]
    y = batches[0][1]
    y[:2] = torch.tensor([[0], [1]]) if labels else torch.tensor([0, 1])
    return batches
