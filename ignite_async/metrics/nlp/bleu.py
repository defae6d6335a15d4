"""BLEU (Papineni et al. 2002) over tokenized candidates and their references, with Chen & Cherry's smoothings."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ignite_async.distributed.comm import all_reduce
from ignite_async.metrics.metric import Metric, NotComputableError, sync_all_reduce
from ignite_async.metrics.nlp._ngram import Sentence, corpus, modified_precision

__all__ = ["Bleu"]

_SMOOTHINGS = ("no_smooth", "smooth1", "nltk_smooth2", "smooth2")
_AVERAGES = ("macro", "micro")


def _closest_reference_length(references: Sequence[Sentence], length: int) -> int:
    """The reference length nearest to ``length``; the shorter one on a tie."""
    return min((len(reference) for reference in references), key=lambda n: (abs(n - length), n))


def _precisions(smooth: str, matched: Sequence[float], total: Sequence[float]) -> list[float]:
    """The n-gram precisions ``p_1 .. p_N`` under ``smooth`` (``matched[0] > 0``)."""
    if smooth == "smooth2":
        # Add one to numerator and denominator of every order but the first (Chen & Cherry's method 2).
        return [matched[0] / total[0]] + [(m + 1) / (t + 1) for m, t in zip(matched[1:], total[1:], strict=True)]
    at_least_one = [max(1.0, t) for t in total]
    if smooth == "nltk_smooth2":
        # nltk's variant: the same, after an empty denominator has been counted as 1.
        head = [matched[0] / at_least_one[0]]
        return head + [(m + 1) / (t + 1) for m, t in zip(matched[1:], at_least_one[1:], strict=True)]
    if smooth == "smooth1":
        # An order without matches counts epsilon = 0.1 matches (Chen & Cherry's method 1).
        return [(m if m != 0 else 0.1) / t for m, t in zip(matched, at_least_one, strict=True)]
    return [m / t for m, t in zip(matched, at_least_one, strict=True)]


def _score(
    smooth: str, matched: Sequence[float], total: Sequence[float], hyp_length: float, ref_length: float
) -> float:
    """BLEU from the clipped matches and n-gram counts of each order, and the candidate and reference lengths."""
    # Without unigram matches no higher order matches either: the score is 0 whatever the smoothing.
    if matched[0] == 0:
        return 0.0
    if smooth == "no_smooth" and min(matched) == 0:
        return 0.0
    # The brevity penalty; hyp_length > 0 here, since there is a unigram match.
    penalty = 1.0 if hyp_length >= ref_length else math.exp(1 - ref_length / hyp_length)
    precisions = _precisions(smooth, matched, total)
    weight = 1 / len(matched)
    return penalty * math.exp(math.fsum(weight * math.log(p) for p in precisions))


class Bleu(Metric):
    """The `BLEU score <https://en.wikipedia.org/wiki/BLEU>`_ of tokenized candidates against their references:
    the brevity penalty times the geometric mean of the clipped n-gram precisions of orders ``1..ngram``.

    ``update((y_pred, y))``: ``y_pred`` is a list of candidates, each a list of tokens; ``y`` holds, for each
    candidate, a list of its references (token lists). Tokens are any hashable values (words, ids).

    :param ngram: the highest n-gram order (uniform weights ``1/ngram``).
    :param smooth: ``"no_smooth"``, ``"smooth1"`` (an order without matches counts 0.1 of a match),
        ``"smooth2"`` (add one to numerator and denominator of orders above 1) or ``"nltk_smooth2"`` (nltk's form
        of it, where an empty denominator first counts as 1), as in `Chen & Cherry 2014
        <https://aclanthology.org/W14-3346/>`_.
    :param output_transform: the engine's output to ``(y_pred, y)``.
    :param device: where ``compute()``'s macro-averaged tensor is put. Counting is done on the host, since the
        inputs are Python token lists.
    :param average: ``"macro"``: the mean of each sentence's BLEU (``compute()`` gives a float64 0-d tensor);
        ``"micro"``: one corpus BLEU from the counts summed over all sentences (a float), as nltk's
        ``corpus_bleu``.
    :raises ValueError: for ``ngram < 1``, an unknown ``smooth`` or ``average``; at ``update``, for ``y_pred``
        and ``y`` of different lengths or a candidate without references.
    :raises TypeError: at ``update``, for a sentence given as a string or tensor instead of a list of tokens.

    >>> bleu = Bleu(ngram=4, smooth="smooth1")
    >>> candidate = "the the the the the the the".split()
    >>> references = ["the cat is on the mat".split(), "there is a cat on the mat".split()]
    >>> bleu.update(([candidate], [references]))
    >>> round(float(bleu.compute()), 4)
    0.0393
    """

    def __init__(
        self,
        ngram: int = 4,
        smooth: str = "no_smooth",
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        average: str = "macro",
    ) -> None:
        if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram <= 0:
            raise ValueError(f"Bleu: ngram order must be an integer greater than zero (got: {ngram!r})")
        if smooth not in _SMOOTHINGS:
            raise ValueError(f"Bleu: smooth is not valid (expected one of {list(_SMOOTHINGS)}, got: {smooth!r})")
        if average not in _AVERAGES:
            raise ValueError(f'Bleu: average must be either "macro" or "micro" (got: {average!r})')
        self.ngrams_order = ngram
        self.smooth = smooth
        self.average = average
        # pytorch-ignite's accumulator names, per mode.
        if average == "micro":
            self._state_attrs = ("p_numerators", "p_denominators", "hyp_length_sum", "ref_length_sum")
        else:
            self._state_attrs = ("_sum_of_bleu", "_num_sentences")
        super().__init__(output_transform, device)

    def reset(self) -> None:
        # Host numbers: the inputs are token lists on the host, so a device tensor would only add a copy per
        # sentence. Counts are ints (exact); the order-n counts are at index n - 1.
        self._sum_of_bleu = 0.0
        self._num_sentences = 0
        self.p_numerators = [0] * self.ngrams_order
        self.p_denominators = [0] * self.ngrams_order
        self.hyp_length_sum = 0
        self.ref_length_sum = 0

    def _counts(self, references: Sequence[Sentence], candidate: Sentence) -> tuple[list[int], list[int], int]:
        matched, total = [], []
        for n in range(1, self.ngrams_order + 1):
            m, t = modified_precision(references, candidate, n)
            matched.append(m)
            total.append(t)
        return matched, total, _closest_reference_length(references, len(candidate))

    def update(self, output: Any) -> None:
        """Add a batch ``(y_pred, y)``: candidates, and a list of references for each one.

        :raises ValueError: for lists of different lengths, or a candidate without references.
        :raises TypeError: for a sentence that is not a list of tokens.
        """
        candidates, references = corpus(type(self).__name__, output)
        for candidate, refs in zip(candidates, references, strict=True):
            matched, total, ref_length = self._counts(refs, candidate)
            if self.average == "macro":
                self._sum_of_bleu += _score(self.smooth, matched, total, len(candidate), ref_length)
                self._num_sentences += 1
            else:
                for i in range(self.ngrams_order):
                    self.p_numerators[i] += matched[i]
                    self.p_denominators[i] += total[i]
                self.hyp_length_sum += len(candidate)
                self.ref_length_sum += ref_length

    def compute(self) -> torch.Tensor | float:
        """The macro mean of sentence BLEUs as a float64 0-d tensor on ``device``, or the micro corpus BLEU.

        :raises NotComputableError: for ``average="macro"`` before any sentence.
        """
        if self.average == "macro":
            return self._compute_macro()
        return self._compute_micro()

    @sync_all_reduce("_sum_of_bleu", "_num_sentences")
    def _compute_macro(self) -> torch.Tensor:
        if self._num_sentences == 0:
            raise NotComputableError("Bleu must have at least one example before it can be computed.")
        return torch.tensor(self._sum_of_bleu / self._num_sentences, dtype=self._double_dtype, device=self._device)

    def _compute_micro(self) -> float:
        # One collective for all the counts (float64 holds them exactly up to 2**53).
        counts = [*self.p_numerators, *self.p_denominators, self.hyp_length_sum, self.ref_length_sum]
        summed = all_reduce(torch.tensor(counts, dtype=torch.float64)).tolist()
        n = self.ngrams_order
        # As pytorch-ignite: no sentence yet is a score of 0, not an error.
        return _score(self.smooth, summed[:n], summed[n : 2 * n], summed[2 * n], summed[2 * n + 1])
