"""Character error rate: character edits from predictions to references, over the references' length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ignite_async.metrics.metric import Metric, NotComputableError, sync_all_reduce
from ignite_async.metrics.nlp._ngram import edit_distance

__all__ = ["CharacterErrorRate"]


def _texts(output: Any) -> tuple[Sequence[str], Sequence[str]]:
    name = "CharacterErrorRate"
    if not isinstance(output, (tuple, list)) or len(output) < 2:
        got = f"{len(output)} items" if isinstance(output, (tuple, list)) else type(output).__name__
        raise ValueError(f"{name}.update takes (y_pred, y), got {got}")
    y_pred, y = output[0], output[1]
    if isinstance(y_pred, str) and isinstance(y, str):
        return [y_pred], [y]
    if not isinstance(y_pred, (list, tuple)) or not isinstance(y, (list, tuple)):
        raise TypeError(
            f"{name}: y_pred and y must both be str or both lists of str, got y_pred: {type(y_pred).__name__} and "
            f"y: {type(y).__name__}"
        )
    for label, texts in (("y_pred", y_pred), ("y", y)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"{name}: all elements of y_pred and y must be strings; {label}[{i}] is a {type(text).__name__}"
                )
    if len(y_pred) != len(y):
        raise ValueError(
            f"{name}: y_pred and y must have the same length. Got y_pred of length {len(y_pred)} and y of length "
            f"{len(y)}."
        )
    return y_pred, y


class CharacterErrorRate(Metric):
    """The character error rate: the Levenshtein distance (substitutions, deletions, insertions) from each
    prediction to its reference, summed, over the summed reference lengths.

    ``update((y_pred, y))``: two strings, or two lists of strings of the same length. With empty references
    only, the rate is ``0.0`` if there was no error and ``1.0`` otherwise.

    :param output_transform: the engine's output to ``(y_pred, y)``.
    :param device: accepted for pytorch-ignite's signature; the counts are exact integers on the host, since
        the inputs are Python strings.
    :param skip_unrolling: as in :class:`~ignite_async.metrics.metric.Metric`.
    :raises TypeError: at ``update``, for inputs that are not strings (or lists of them), or a string with a list.
    :raises ValueError: at ``update``, for lists of different lengths.

    >>> cer = CharacterErrorRate()
    >>> cer.update((["the cat sat on the mat", "hello world"], ["the cat sat on mat", "hello world"]))
    >>> round(cer.compute(), 4)
    0.1379
    """

    _state_attrs = ("_num_errors", "_num_refs", "_num_examples")

    def reset(self) -> None:
        self._num_errors = 0
        self._num_refs = 0
        # Updates, not samples (as pytorch-ignite): an update with empty lists makes the metric computable.
        self._num_examples = 0

    def update(self, output: Any) -> None:
        """Add ``(y_pred, y)``: a prediction and its reference, or lists of them.

        :raises TypeError: for inputs that are not strings or lists of strings.
        :raises ValueError: for lists of different lengths.
        """
        predictions, references = _texts(output)
        self._num_errors += sum(edit_distance(r, p) for p, r in zip(predictions, references, strict=True))
        self._num_refs += sum(len(r) for r in references)
        self._num_examples += 1

    @sync_all_reduce("_num_errors", "_num_refs", "_num_examples")
    def compute(self) -> float:
        """The summed edits over the summed reference lengths.

        :raises NotComputableError: before any update.
        """
        if self._num_examples == 0:
            raise NotComputableError("CharacterErrorRate must have at least one example before it can be computed.")
        if self._num_refs == 0:
            return 0.0 if self._num_errors == 0 else 1.0
        return self._num_errors / self._num_refs
