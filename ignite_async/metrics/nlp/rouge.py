"""ROUGE-N and ROUGE-L (Lin 2004) over tokenized candidates and their references."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from ignite_async.metrics.metric import Metric, NotComputableError, sync_all_reduce
from ignite_async.metrics.nlp._ngram import Sentence, corpus, lcs, ngrams

__all__ = ["Rouge", "RougeL", "RougeN"]

_MULTIREFS = ("best", "average")


class _Overlap(NamedTuple):
    """What a candidate shares with a reference (``match``), and the sizes the precision and recall divide by."""

    match: int
    candidate: int
    reference: int

    def precision(self) -> float:
        return self.match / self.candidate if self.candidate > 0 else 0.0

    def recall(self) -> float:
        return self.match / self.reference if self.reference > 0 else 0.0


class _BaseRouge(Metric):
    """The per-sample means of precision, recall and F of one ROUGE variant; see :class:`RougeN`."""

    _state_attrs = ("_recall", "_precision", "_fmeasure", "_num_examples")

    def __init__(
        self,
        multiref: str = "average",
        alpha: float = 0,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        if not 0 <= alpha <= 1:
            raise ValueError(f"{type(self).__name__}: alpha must be in interval [0, 1] (got : {alpha})")
        if multiref not in _MULTIREFS:
            raise ValueError(
                f"{type(self).__name__}: multiref : valid values are {list(_MULTIREFS)} (got : {multiref!r})"
            )
        self._alpha = alpha
        self._multiref = multiref
        super().__init__(output_transform, device)

    def reset(self) -> None:
        # Host numbers: the inputs are token lists on the host.
        self._recall = 0.0
        self._precision = 0.0
        self._fmeasure = 0.0
        self._num_examples = 0

    def _overlap(self, candidate: Sentence, reference: Sentence) -> _Overlap:
        raise NotImplementedError

    def _metric_name(self) -> str:
        raise NotImplementedError

    def _reduced(self, candidate: Sentence, references: Sequence[Sentence]) -> _Overlap:
        overlaps = [self._overlap(candidate, reference) for reference in references]
        if self._multiref == "best":
            # The reference with the highest recall; the first of those on a tie.
            return max(overlaps, key=lambda o: o.recall())
        # "average": the counts pooled over all references.
        return _Overlap(*(sum(column) for column in zip(*overlaps, strict=True)))

    def update(self, output: Any) -> None:
        """Add a batch ``(y_pred, y)``: candidates, and a list of references for each one.

        :raises ValueError: for lists of different lengths, or a candidate without references.
        :raises TypeError: for a sentence that is not a list of tokens.
        """
        self._add(*corpus(type(self).__name__, output))

    def _add(self, candidates: Sequence[Sentence], references: Sequence[Sequence[Sentence]]) -> None:
        """Accumulate checked candidates and references (:class:`Rouge` checks them once for all variants)."""
        for candidate, refs in zip(candidates, references, strict=True):
            overlap = self._reduced(candidate, refs)
            precision, recall = overlap.precision(), overlap.recall()
            self._precision += precision
            self._recall += recall
            both = precision * recall
            if both > 0:  # F is 0 when either is, and the formula would divide by 0 when both are
                self._fmeasure += both / ((1 - self._alpha) * precision + self._alpha * recall)
            self._num_examples += 1

    @sync_all_reduce("_precision", "_recall", "_fmeasure", "_num_examples")
    def compute(self) -> dict[str, float]:
        """``{"<name>-P": precision, "<name>-R": recall, "<name>-F": F}``, each the mean over samples.

        :raises NotComputableError: before any sample.
        """
        if self._num_examples == 0:
            raise NotComputableError("Rouge metric must have at least one example before being computed")
        name = self._metric_name()
        return {
            f"{name}-P": float(self._precision / self._num_examples),
            f"{name}-R": float(self._recall / self._num_examples),
            f"{name}-F": float(self._fmeasure / self._num_examples),
        }


class RougeN(_BaseRouge):
    """ROUGE-N: precision, recall and F of the candidate's n-grams that also occur in a reference (each
    counted at most as often as in the reference), averaged over samples.

    ``update((y_pred, y))``: ``y_pred`` is a list of candidates, each a list of tokens; ``y`` holds, for each
    candidate, a list of its references (token lists).

    :param ngram: the n-gram order.
    :param multiref: with several references, ``"average"`` pools their counts, ``"best"`` keeps the
        reference with the highest recall.
    :param alpha: F's weight of recall against precision: ``F = P R / ((1 - alpha) P + alpha R)``; ``0`` gives
        the recall, ``1`` the precision, ``0.5`` their harmonic mean.
    :param output_transform: the engine's output to ``(y_pred, y)``.
    :param device: accepted for pytorch-ignite's signature; counting is done on the host.
    :raises ValueError: for ``ngram < 1``, ``alpha`` outside ``[0, 1]`` or an unknown ``multiref``.

    >>> rouge = RougeN(ngram=2, multiref="best")
    >>> candidate = "the cat is not there".split()
    >>> references = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    >>> rouge.update(([candidate], [references]))
    >>> rouge.compute()
    {'Rouge-2-P': 0.5, 'Rouge-2-R': 0.4, 'Rouge-2-F': 0.4}
    """

    def __init__(
        self,
        ngram: int = 4,
        multiref: str = "average",
        alpha: float = 0,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
            raise ValueError(f"RougeN: ngram order must be an integer greater than zero (got : {ngram!r})")
        self._ngram = ngram
        super().__init__(multiref=multiref, alpha=alpha, output_transform=output_transform, device=device)

    def _overlap(self, candidate: Sentence, reference: Sentence) -> _Overlap:
        mine, theirs = ngrams(candidate, self._ngram), ngrams(reference, self._ngram)
        return _Overlap(sum((mine & theirs).values()), sum(mine.values()), sum(theirs.values()))

    def _metric_name(self) -> str:
        return f"Rouge-{self._ngram}"


class RougeL(_BaseRouge):
    """ROUGE-L: precision and recall of the longest common subsequence of candidate and reference (its length
    over the candidate's and the reference's), and their F, averaged over samples.

    Arguments and input as :class:`RougeN`, without ``ngram``.

    >>> rouge = RougeL(alpha=0.5)
    >>> rouge.update(([["a", "b", "c", "d"]], [[["a", "c", "d"]]]))  # the common subsequence: a c d
    >>> rouge.compute()
    {'Rouge-L-P': 0.75, 'Rouge-L-R': 1.0, 'Rouge-L-F': 0.8571428571428571}
    """

    def _overlap(self, candidate: Sentence, reference: Sentence) -> _Overlap:
        return _Overlap(lcs(candidate, reference), len(candidate), len(reference))

    def _metric_name(self) -> str:
        return "Rouge-L"


class Rouge(Metric):
    """Several ROUGE variants at once: ``"L"`` for :class:`RougeL`, an integer ``n`` for :class:`RougeN`.
    ``compute()`` merges their dicts, in the order of ``variants``.

    :param variants: the variants; ``None`` or empty: ``[1, 2, 4, "L"]``.
    :param multiref: ``"average"`` or ``"best"``, as in :class:`RougeN`.
    :param alpha: F's weight of recall against precision, as in :class:`RougeN`.
    :param output_transform: the engine's output to ``(y_pred, y)``.
    :param device: accepted for pytorch-ignite's signature; counting is done on the host.
    :raises ValueError: for a variant that is neither ``"L"`` nor an integer ``>= 1``, and as :class:`RougeN`.

    >>> rouge = Rouge(variants=["L", 2], multiref="best")
    >>> candidate = "the cat is not there".split()
    >>> references = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    >>> rouge.update(([candidate], [references]))
    >>> rouge.compute()
    {'Rouge-L-P': 0.6, 'Rouge-L-R': 0.5, 'Rouge-L-F': 0.5, 'Rouge-2-P': 0.5, 'Rouge-2-R': 0.4, 'Rouge-2-F': 0.4}
    """

    # The variants checkpoint their own accumulators (the base saves a metric as its state_dict()).
    _state_attrs = ("internal_metrics",)

    def __init__(
        self,
        variants: Sequence[str | int] | None = None,
        multiref: str = "average",
        alpha: float = 0,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        if variants is None or len(variants) == 0:
            variants = [1, 2, 4, "L"]
        self.internal_metrics: list[_BaseRouge] = []
        for variant in variants:
            common: dict[str, Any] = {
                "multiref": multiref,
                "alpha": alpha,
                "output_transform": output_transform,
                "device": device,
            }
            if variant == "L" and isinstance(variant, str):
                self.internal_metrics.append(RougeL(**common))
            elif isinstance(variant, int) and not isinstance(variant, bool):
                self.internal_metrics.append(RougeN(ngram=variant, **common))
            else:
                raise ValueError(f"Rouge: variant must be 'L' or integer greater to zero (got {variant!r})")
        super().__init__(output_transform, device)

    def reset(self) -> None:
        for metric in self.internal_metrics:
            metric.reset()

    def update(self, output: Any) -> None:
        """Add a batch ``(y_pred, y)`` to every variant (checked once).

        :raises ValueError: for lists of different lengths, or a candidate without references.
        :raises TypeError: for a sentence that is not a list of tokens.
        """
        candidates, references = corpus(type(self).__name__, output)
        for metric in self.internal_metrics:
            metric._add(candidates, references)

    def compute(self) -> dict[str, float]:
        """Every variant's ``-P``, ``-R`` and ``-F``, in one dict.

        :raises NotComputableError: before any sample.
        """
        results: dict[str, float] = {}
        for metric in self.internal_metrics:
            results.update(metric.compute())
        return results
