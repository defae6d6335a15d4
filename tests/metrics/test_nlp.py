"""Bleu, Rouge, RougeN, RougeL and CharacterErrorRate: pytorch-ignite 0.5.5's values on random corpora."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import ignite.metrics.nlp as ig
import pytest
import torch
from ignite.metrics.nlp.character_error_rate import _edit_distance as ignite_edit_distance
from ignite.metrics.nlp.utils import lcs as ignite_lcs
from ignite.metrics.nlp.utils import modified_precision as ignite_modified_precision
from ignite.metrics.nlp.utils import ngrams as ignite_ngrams

import ignite_async.metrics.nlp as ours
from ignite_async.distributed import Parallel
from ignite_async.metrics.metric import NotComputableError
from ignite_async.metrics.nlp import Bleu, CharacterErrorRate, Rouge, RougeL, RougeN
from ignite_async.metrics.nlp._ngram import edit_distance, lcs, modified_precision, ngrams
from tests.metrics._oracle import assert_close, check_attached, check_direct, check_state_round_trip, plain

Corpus = tuple[list[Any], list[list[list[Any]]]]


def sentence(rng: random.Random, vocab: list[Any], longest: int) -> list[Any]:
    return [rng.choice(vocab) for _ in range(rng.randint(0, longest))]


def corpus_batches(seed: int, batches: int = 3) -> list[Corpus]:
    """Candidates of 0-14 tokens from a small vocabulary (so that n-grams match), each with 1-4 references
    of 0-14 tokens; words or ints, lists or tuples; batches of 1-6 samples."""
    rng = random.Random(seed)
    vocab: list[Any] = rng.choice([list("abcde"), ["the", "cat", "sat", "on", "mat", "a"], list(range(4))])
    longest = rng.choice([4, 9, 14])
    out: list[Corpus] = []
    for _ in range(batches):
        n = rng.randint(1, 6)
        candidates: list[Any] = []
        references: list[list[list[Any]]] = []
        for _ in range(n):
            candidate = sentence(rng, vocab, longest)
            # Some candidates copy a reference with edits, for high-order matches.
            refs = [sentence(rng, vocab, longest) for _ in range(rng.randint(1, 4))]
            if rng.random() < 0.4:
                candidate = list(refs[0])
                for _ in range(rng.randint(0, 3)):
                    if candidate:
                        candidate[rng.randrange(len(candidate))] = rng.choice(vocab)
            candidates.append(tuple(candidate) if rng.random() < 0.2 else candidate)
            references.append(refs)
        out.append((candidates, references))
    return out


def text_batches(seed: int) -> list[tuple[Any, Any]]:
    rng = random.Random(seed)
    alphabet = rng.choice(["ab", "abc d", "hello world"])

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))

    batches: list[tuple[Any, Any]] = []
    for _ in range(3):
        if rng.random() < 0.3:
            batches.append((text(), text()))  # a single pair, as two strings
        else:
            n = rng.randint(1, 5)
            batches.append(([text() for _ in range(n)], [text() for _ in range(n)]))
    return batches


SMOOTHS = ["no_smooth", "smooth1", "nltk_smooth2", "smooth2"]


def test_sequence_utilities_equal_ignites() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        a, b = sentence(rng, [0, 1, 2, 3], 30), sentence(rng, [0, 1, 2, 3], 30)
        n = rng.randint(1, 5)
        refs = [sentence(rng, [0, 1, 2, 3], 12) for _ in range(rng.randint(1, 3))]
        assert lcs(a, b) == ignite_lcs(a, b)
        assert ngrams(a, n) == ignite_ngrams(a, n)
        assert modified_precision(refs, a, n) == ignite_modified_precision(refs, a, n)
        s, t = "".join(map(str, a)), "".join(map(str, b))
        assert edit_distance(s, t) == ignite_edit_distance(s, t)
    long_a, long_b = "ab" * 300 + "c", "ba" * 280
    assert lcs(long_a, long_b) == ignite_lcs(long_a, long_b)
    assert edit_distance(long_a, long_b) == ignite_edit_distance(long_a, long_b)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("average", ["macro", "micro"])
@pytest.mark.parametrize("smooth", SMOOTHS)
def test_bleu_equals_ignites(smooth: str, average: str, seed: int) -> None:
    ngram = [4, 1, 2, 3][seed]
    batches = corpus_batches(seed * 10 + SMOOTHS.index(smooth))
    mine = Bleu(ngram=ngram, smooth=smooth, average=average)
    theirs = ig.Bleu(ngram=ngram, smooth=smooth, average=average)
    check_direct(mine, theirs, batches)
    # The same kind of value: a float64 0-d tensor (macro), a number (micro).
    value = mine.compute()
    if average == "macro":
        assert isinstance(value, torch.Tensor)
        assert value.dtype == torch.float64
        assert value.ndim == 0
    else:
        assert isinstance(value, float)


def test_bleu_defaults_and_documented_value() -> None:
    candidate = ["the"] * 7
    references = [["the", "cat", "is", "on", "the", "mat"], ["there", "is", "a", "cat", "on", "the", "mat"]]
    for smooth in SMOOTHS:
        check_direct(Bleu(smooth=smooth), ig.Bleu(smooth=smooth), [([candidate], [references])])
    bleu = Bleu(ngram=4, smooth="smooth1")
    bleu.update(([candidate], [references]))
    assert float(bleu.compute()) == pytest.approx(0.0393, abs=1e-4)
    # Micro before any sentence is 0, as pytorch-ignite's.
    assert Bleu(average="micro").compute() == ig.Bleu(average="micro").compute() == 0


ROUGES: dict[str, Any] = {
    "rouge default": lambda lib: lib.Rouge(),
    "rouge L,1,3 best": lambda lib: lib.Rouge(variants=["L", 1, 3], multiref="best"),
    "rouge 2,L alpha .5": lambda lib: lib.Rouge(variants=[2, "L"], alpha=0.5),
    "rouge 1 alpha 1 best": lambda lib: lib.Rouge(variants=[1], alpha=1, multiref="best"),
    "rougeN": lambda lib: lib.RougeN(),
    "rougeN 2 best alpha .3": lambda lib: lib.RougeN(ngram=2, multiref="best", alpha=0.3),
    "rougeN 1 alpha 1": lambda lib: lib.RougeN(ngram=1, alpha=1.0),
    "rougeL": lambda lib: lib.RougeL(),
    "rougeL best alpha .7": lambda lib: lib.RougeL(multiref="best", alpha=0.7),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(ROUGES))
def test_rouge_equals_ignites(name: str, seed: int) -> None:
    mine, theirs = ROUGES[name](ours), ROUGES[name](ig)
    check_direct(mine, theirs, corpus_batches(100 + seed))
    assert list(mine.compute()) == list(theirs.compute())  # the same keys in the same order


@pytest.mark.parametrize("seed", range(6))
def test_character_error_rate_equals_ignites(seed: int) -> None:
    check_direct(CharacterErrorRate(), ig.CharacterErrorRate(), text_batches(seed))


def test_character_error_rate_edge_values() -> None:
    cases: list[list[Any]] = [[(["", ""], ["", ""])], [(["ab"], [""])], [([], [])], [("", "")]]
    for batches in cases:
        check_direct(CharacterErrorRate(), ig.CharacterErrorRate(), batches)


ATTACHED: dict[str, Any] = {
    "bleu macro": lambda lib: lib.Bleu(smooth="smooth1"),
    "bleu micro": lambda lib: lib.Bleu(ngram=3, smooth="nltk_smooth2", average="micro"),
    "rouge": lambda lib: lib.Rouge(variants=["L", 2], multiref="best", alpha=0.5),
    "rougeL": lambda lib: lib.RougeL(),
    "cer": lambda lib: lib.CharacterErrorRate(),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(ATTACHED))
async def test_attached_like_ignite(name: str) -> None:
    batches: list[Any] = text_batches(7) if name == "cer" else corpus_batches(7, batches=4)
    await check_attached(lambda mine: ATTACHED[name](ours if mine else ig), batches)


@pytest.mark.anyio
async def test_attached_with_dict_output_and_batch_wise() -> None:
    batches: list[Any] = [{"y_pred": p, "y": y, "x": None} for p, y in corpus_batches(8)]
    await check_attached(lambda mine: (ours if mine else ig).Rouge(variants=[1, "L"]), batches, usage="batch_wise")


STATEFUL: dict[str, Any] = {
    "bleu macro": lambda: Bleu(smooth="smooth2"),
    "bleu micro": lambda: Bleu(ngram=2, smooth="smooth1", average="micro"),
    "rouge": lambda: Rouge(variants=[1, "L", 3]),
    "rougeN": lambda: RougeN(ngram=2, multiref="best"),
    "cer": lambda: CharacterErrorRate(),
}


@pytest.mark.parametrize("name", list(STATEFUL))
def test_state_round_trip(name: str) -> None:
    batches: list[Any] = text_batches(3) if name == "cer" else corpus_batches(3, batches=4)
    check_state_round_trip(STATEFUL[name], batches)
    # The checkpoint is a copy: later updates of the source leave it as it was.
    source = STATEFUL[name]()
    source.update(batches[0])
    saved = source.state_dict()
    before = source.compute()
    for batch in batches[1:]:
        source.update(batch)
    restored = STATEFUL[name]()
    restored.load_state_dict(saved)
    assert_close(restored.compute(), before)


def test_rouge_checkpoint_holds_each_variant() -> None:
    rouge = Rouge(variants=[2, "L"])
    rouge.update(corpus_batches(4)[0])
    state = rouge.state_dict()
    assert sorted(state) == ["internal_metrics"]
    assert [sorted(s) for s in state["internal_metrics"]] == [
        ["_fmeasure", "_num_examples", "_precision", "_recall"]
    ] * 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="ngram order must be"):
        Bleu(ngram=0)
    with pytest.raises(ValueError, match="smooth is not valid"):
        Bleu(smooth="smooth3")
    with pytest.raises(ValueError, match='"macro" or "micro"'):
        Bleu(average="weighted")
    with pytest.raises(ValueError, match="alpha must be in interval"):
        RougeL(alpha=1.5)
    with pytest.raises(ValueError, match="multiref"):
        RougeN(multiref="worst")
    with pytest.raises(ValueError, match="ngram order must be"):
        RougeN(ngram=0)
    with pytest.raises(ValueError, match="variant must be 'L' or integer"):
        Rouge(variants=["L", "S"])
    with pytest.raises(ValueError, match="ngram order must be"):
        Rouge(variants=[0])


@pytest.mark.parametrize("make", [lambda: Bleu(), lambda: Bleu(average="micro"), lambda: Rouge(), lambda: RougeL()])
def test_bad_corpus_input(make: Any) -> None:
    metric = make()
    refs = [["a", "b"], ["b", "c"]]
    with pytest.raises(ValueError, match="2 candidates but y has 1"):
        metric.update(([["a"], ["b"]], [refs]))
    with pytest.raises(TypeError, match=r"y_pred\[0\] is the str 'a b'.*split"):
        metric.update((["a b"], [refs]))
    with pytest.raises(TypeError, match=r"y\[0\]\[0\] is the str 'a'"):
        metric.update(([["a", "b"]], [["a", "b"]]))  # the list of references per candidate is missing
    with pytest.raises(TypeError, match=r"y_pred must be a list \(of candidates"):
        metric.update((torch.zeros(1, 3), [refs]))
    with pytest.raises(TypeError, match="tolist"):
        metric.update(([torch.tensor([1, 2])], [[[1, 2]]]))
    with pytest.raises(ValueError, match=r"y\[0\] has no reference"):
        metric.update(([["a"]], [[]]))
    with pytest.raises(ValueError, match="takes \\(y_pred, y\\)"):
        metric.update(([["a"]],))
    # Nothing was accumulated by the refused updates.
    if not (isinstance(metric, Bleu) and metric.average == "micro"):
        with pytest.raises(NotComputableError):
            metric.compute()


def test_bad_text_input() -> None:
    cer = CharacterErrorRate()
    with pytest.raises(TypeError, match="both be str or both lists"):
        cer.update(("abc", 3))
    with pytest.raises(TypeError, match="both be str or both lists"):
        cer.update(("abc", ["abc"]))
    with pytest.raises(TypeError, match=r"y\[1\] is a int"):
        cer.update((["a", "b"], ["a", 2]))
    with pytest.raises(ValueError, match="same length"):
        cer.update((["a", "b"], ["a"]))
    with pytest.raises(NotComputableError):
        cer.compute()


def test_not_computable_before_update() -> None:
    for metric in (Bleu(), Rouge(), RougeN(), CharacterErrorRate()):
        with pytest.raises(NotComputableError):
            metric.compute()


def test_reset_forgets() -> None:
    batches = corpus_batches(5)
    for make in (lambda: Bleu(average="micro"), lambda: Bleu(), lambda: Rouge()):
        metric, fresh = make(), make()
        metric.update(batches[0])
        metric.reset()
        metric.update(batches[1])
        fresh.update(batches[1])
        assert_close(metric.compute(), fresh.compute())


TWO_RANKS: dict[str, Any] = {
    "bleu macro": lambda lib: lib.Bleu(smooth="smooth1"),
    "bleu micro": lambda lib: lib.Bleu(smooth="smooth2", average="micro"),
    "rouge": lambda lib: lib.Rouge(variants=[1, "L"], multiref="best", alpha=0.5),
    "cer": lambda lib: lib.CharacterErrorRate(),
}


def _rank_values(local_rank: int, out: Path) -> None:
    """On each of two ranks: every other batch, each metric computed over both ranks' batches."""
    values = {}
    for name, make in TWO_RANKS.items():
        metric = make(ours)
        data: list[Any] = text_batches(9) if name == "cer" else corpus_batches(9, batches=4)
        for batch in data[local_rank::2]:
            metric.update(batch)
        values[name] = plain(metric.compute())
    (out / f"rank{local_rank}.json").write_text(json.dumps(values))


def test_two_ranks_compute_the_value_of_all_the_data(tmp_path: Path) -> None:
    with Parallel("gloo", nproc_per_node=2, timeout=timedelta(seconds=60)) as parallel:
        parallel.run(_rank_values, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for name, make in TWO_RANKS.items():
        theirs = make(ig)
        data: list[Any] = text_batches(9) if name == "cer" else corpus_batches(9, batches=4)
        for batch in data:
            theirs.update(batch)
        assert_close(ranks[0][name], theirs.compute())
        assert ranks[1][name] == ranks[0][name], name
