"""pytorch-ignite's NLP metrics (``ignite.metrics.nlp``): BLEU, ROUGE-N/L, character error rate, perplexity.

BLEU, ROUGE and the character error rate take Python token lists and strings, so they count on the host
(exact integers) and have nothing to read back from a device. ``Perplexity`` is the one of
``ignite_async.metrics``, exported here under pytorch-ignite's path too.
"""

from __future__ import annotations

from ignite_async.metrics.nlp.bleu import Bleu
from ignite_async.metrics.nlp.character_error_rate import CharacterErrorRate
from ignite_async.metrics.nlp.rouge import Rouge, RougeL, RougeN
from ignite_async.metrics.perplexity import Perplexity

__all__ = ["Bleu", "CharacterErrorRate", "Perplexity", "Rouge", "RougeL", "RougeN"]
