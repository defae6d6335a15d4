"""Sequence utilities shared by the NLP metrics: n-gram counts, clipped precision, LCS and edit distance.

The LCS and edit-distance lengths use bit-parallel algorithms on Python integers (one big-int operation per
token instead of a row of a dynamic-programming table), so that long sentences stay cheap on the host.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import torch

__all__ = ["corpus", "edit_distance", "lcs", "modified_precision", "ngrams"]

Sentence = Sequence[Hashable]


def ngrams(sequence: Sentence, n: int) -> Counter[tuple[Hashable, ...]]:
    """How often each run of ``n`` consecutive tokens occurs in ``sequence``.

    >>> sorted(ngrams(["a", "b", "a", "b"], 2).items())
    [(('a', 'b'), 2), (('b', 'a'), 1)]
    """
    return Counter(zip(*(sequence[i:] for i in range(n)), strict=False))


def modified_precision(references: Sequence[Sentence], candidate: Sentence, n: int) -> tuple[int, int]:
    """BLEU's clipped n-gram matches and the candidate's n-gram count.

    Each n-gram of ``candidate`` counts at most as often as it occurs in the reference where it occurs most.

    >>> modified_precision([["the", "cat"], ["the", "the"]], ["the", "the", "the"], 1)
    (2, 3)
    """
    counts = ngrams(candidate, n)
    most: Counter[tuple[Hashable, ...]] = Counter()
    for reference in references:
        most |= ngrams(reference, n)
    matched = sum(min(count, most[gram]) for gram, count in counts.items())
    return matched, sum(counts.values())


def _positions(sequence: Sentence) -> dict[Hashable, int]:
    """For each token, the bit mask of its positions in ``sequence``."""
    masks: dict[Hashable, int] = {}
    for position, token in enumerate(sequence):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def lcs(seq_a: Sentence, seq_b: Sentence) -> int:
    """The length of the longest common subsequence of two token sequences.

    Bit ``j`` of ``v`` is 1 while column ``j`` of ``seq_b`` has not yet raised the LCS row (Hyyrö's bit-vector
    formulation); the length is the number of bits that were cleared.

    >>> lcs("the cat is on the mat".split(), "there is a cat on the mat".split())
    4
    """
    if not seq_a or not seq_b:
        return 0
    masks = _positions(seq_b)
    full = (1 << len(seq_b)) - 1
    v = full
    for token in seq_a:
        match = masks.get(token)
        if match is not None:
            u = v & match
            v = ((v + u) | (v - u)) & full
    return len(seq_b) - v.bit_count()


def edit_distance(ref: Sentence, pred: Sentence) -> int:
    """The Levenshtein distance (substitutions, deletions and insertions, each costing 1).

    Myers' bit-vector algorithm in Hyyrö's form: the vertical deltas of one column of the distance table are
    kept as two bit masks (``+1`` and ``-1``), and the last row's value is followed along ``pred``.

    >>> edit_distance("kitten", "sitting")
    3
    """
    if not ref:
        return len(pred)
    if not pred:
        return len(ref)
    masks = _positions(ref)
    full = (1 << len(ref)) - 1
    last = 1 << (len(ref) - 1)
    plus, minus, score = full, 0, len(ref)
    for token in pred:
        eq = masks.get(token, 0)
        xv = eq | minus
        xh = (((eq & plus) + plus) ^ plus) | eq
        h_plus = minus | ~(xh | plus)
        h_minus = plus & xh
        if h_plus & last:
            score += 1
        elif h_minus & last:
            score -= 1
        # The first row of the table is 0, 1, 2, ...: each step along pred enters it with +1.
        h_plus = ((h_plus << 1) | 1) & full
        h_minus = (h_minus << 1) & full
        plus = (h_minus | ~(xv | h_plus)) & full
        minus = h_plus & xv
    return score


def _is_sentence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _sentence_problem(value: Any, what: str) -> str | None:
    if isinstance(value, str):
        return f"{what} is the str {value[:40]!r}: give it as a list of tokens (e.g. 'the cat sat'.split())"
    if isinstance(value, torch.Tensor):
        return f"{what} is a tensor: give it as a list of tokens (tensor.tolist())"
    if not _is_sentence(value):
        return f"{what} must be a list of tokens, got {type(value).__name__}"
    return None


def corpus(name: str, output: Any) -> tuple[Sequence[Sentence], Sequence[Sequence[Sentence]]]:
    """``(y_pred, y)`` checked: a list of candidates (token lists), and for each one a non-empty list of
    references (token lists).

    :raises ValueError: for an output of fewer than two items, lists of different lengths, or a candidate
        without references.
    :raises TypeError: for a sentence that is a string or a tensor rather than a list of tokens.
    """
    if not isinstance(output, (tuple, list)) or len(output) < 2:
        got = f"{len(output)} items" if isinstance(output, (tuple, list)) else type(output).__name__
        raise ValueError(f"{name}.update takes (y_pred, y), got {got}")
    candidates, references = output[0], output[1]
    for value, label in ((candidates, "y_pred"), (references, "y")):
        if not _is_sentence(value):
            raise TypeError(
                f"{name}: {label} must be a list ({'of candidates' if label == 'y_pred' else 'of reference lists'}"
                f", one per sample), got {type(value).__name__}"
            )
    if len(candidates) != len(references):
        raise ValueError(
            f"{name}: y_pred has {len(candidates)} candidates but y has {len(references)} reference lists; "
            "give one list of references per candidate"
        )
    for i, (candidate, refs) in enumerate(zip(candidates, references, strict=True)):
        problem = _sentence_problem(candidate, f"y_pred[{i}]")
        if problem is not None:
            raise TypeError(f"{name}: {problem}")
        if not _is_sentence(refs):
            raise TypeError(f"{name}: y[{i}] must be a list of references (token lists), got {type(refs).__name__}")
        if len(refs) == 0:
            raise ValueError(f"{name}: y[{i}] has no reference; each candidate needs at least one")
        for j, reference in enumerate(refs):
            problem = _sentence_problem(reference, f"y[{i}][{j}]")
            if problem is not None:
                raise TypeError(f"{name}: {problem} (y is a list, per candidate, of a list of references)")
    return candidates, references
