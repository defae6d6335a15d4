"""Trace a quickstart run and draw its timeline: docs/images/quickstart-trace.png.

The run is examples/quickstart.py's (same model, data, background evaluation every 5 epochs, checkpoint
every 10), with a :class:`~ignite_async.handlers.tracer.Tracer` attached; the trace JSON is kept beside the
picture's run directory for ui.perfetto.dev. The picture has one row per thread or task row of the trace
and a bar per span, coloured by category: the whole run on top, and below, a zoom on the end of the 10th
epoch, where the evaluation and the checkpoint write run beside the next steps.

    .venv/bin/python scripts/trace_picture.py [--epochs 12] [--out docs/images/quickstart-trace.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Patch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from quickstart import build_model, evaluate, make_loader  # type: ignore[import-not-found]  # noqa: E402

from ignite_async import Engine, Events  # noqa: E402
from ignite_async.handlers import ModelCheckpoint, RNGStates  # noqa: E402
from ignite_async.handlers.tracer import Tracer  # noqa: E402

COLOURS = {
    "data": "#8fbbd9",
    "process": "#1f77b4",
    "event": "#dddddd",
    "handler": "#ff7f0e",
    "background": "#2ca02c",
    "task": "#9467bd",
    "thread": "#8c564b",
    "cuda": "#d62728",
}


async def traced_run(epochs: int, directory: Path) -> Path:
    """The quickstart's training, traced; returns the trace file."""
    torch.manual_seed(0)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    train_loader = make_loader(2048, shuffle=True, seed=0)
    val_loader = make_loader(512, shuffle=False, seed=1)

    def train_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        model.train()
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return loss.item()

    trainer = Engine(train_step)

    @trainer.on(Events.EPOCH_COMPLETED(every=5))
    def spawn_evaluation(engine: Engine) -> None:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

        async def run_evaluation() -> None:
            engine.state.metrics["val_mse"] = await evaluate(weights, val_loader)

        engine.spawn(run_evaluation)

    to_save = {"model": model, "optimizer": optimizer, "trainer": trainer, "rng": RNGStates()}
    checkpointer = ModelCheckpoint(directory / "checkpoints", "quickstart", n_saved=2, require_empty=False)
    trainer.add_event_handler(Events.EPOCH_COMPLETED(every=10), checkpointer, to_save)

    path = directory / "quickstart-trace.json"
    Tracer(path).attach(trainer)
    await trainer.run(train_loader, max_epochs=epochs)
    return path


def rows_of(trace: dict[str, Any]) -> tuple[list[int], dict[int, str], list[dict[str, Any]]]:
    events = trace["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    order = {e["tid"]: e["args"]["sort_index"] for e in events if e["ph"] == "M" and e["name"] == "thread_sort_index"}
    spans = [e for e in events if e["ph"] == "X" and e["cat"] != "run"]
    tids = sorted({s["tid"] for s in spans}, key=lambda t: order.get(t, t))
    return tids, names, spans


def depths(spans: list[dict[str, Any]]) -> dict[int, int]:
    """Nesting depth of each span on its row (0: outermost), by a sweep over start times."""
    out: dict[int, int] = {}
    by_row: dict[int, list[dict[str, Any]]] = {}
    for span in spans:
        by_row.setdefault(span["tid"], []).append(span)
    for row in by_row.values():
        open_ends: list[float] = []
        for span in sorted(row, key=lambda s: (s["ts"], -s["dur"])):
            while open_ends and open_ends[-1] <= span["ts"]:
                open_ends.pop()
            out[id(span)] = len(open_ends)
            open_ends.append(span["ts"] + span["dur"])
    return out


def draw(
    ax: Any,
    tids: list[int],
    spans: list[dict[str, Any]],
    depth: dict[int, int],
    window: tuple[float, float],
    *,
    labels: bool = False,
) -> None:
    lo, hi = window
    row = {tid: y for y, tid in enumerate(tids)}
    shown = [s for s in spans if s["ts"] <= hi and s["ts"] + s["dur"] >= lo]
    for span in sorted(shown, key=lambda s: depth[id(s)]):  # outer spans first, nested ones drawn over them
        d = min(depth[id(span)], 3)
        height = 0.8 - 0.18 * d
        y = row[span["tid"]]
        left, width = span["ts"] / 1e3, max(span["dur"] / 1e3, (hi - lo) / 1e3 / 2000)
        ax.broken_barh([(left, width)], (y - height / 2, height), facecolors=COLOURS.get(span["cat"], "#999999"))
        if labels and span["cat"] in ("task", "background", "thread") and span["dur"] > (hi - lo) / 16:
            fired_by = span.get("args", {}).get("fired_by")
            text = f"{span['name']} (fired by {fired_by})" if fired_by else span["name"]
            ax.text(max(left, lo / 1e3) + (hi - lo) / 1e3 / 200, y, text, va="center", fontsize=8)
    ax.set_xlim(lo / 1e3, hi / 1e3)
    ax.set_ylim(len(tids) - 0.5, -0.5)
    ax.set_yticks(range(len(tids)))


def render(path: Path, out: Path) -> None:
    trace = json.loads(path.read_text())
    tids, names, spans = rows_of(trace)
    depth = depths(spans)
    start = min(s["ts"] for s in spans)
    end = max(s["ts"] + s["dur"] for s in spans)
    # The zoom: from just before the 10th EPOCH_COMPLETED firing (evaluation and checkpoint) to a little after.
    firings = sorted(s["ts"] for s in spans if s["cat"] == "event" and s["name"] == "EPOCH_COMPLETED")
    at = firings[9] if len(firings) >= 10 else firings[-1]
    steps = sorted(s["dur"] for s in spans if s["cat"] == "process")
    step = steps[len(steps) // 2]
    background = [s for s in spans if s["cat"] in ("task", "background") and s["ts"] >= at - 1]
    zoom_end = max((s["ts"] + s["dur"] for s in background), default=at + 200 * step)
    zoom = (at - 20 * step, min(zoom_end + 20 * step, end))

    labels = [names.get(t, str(t)) for t in tids]
    fig, (full, near) = plt.subplots(2, 1, figsize=(13, 1.2 + 1.1 * len(tids) * 2), constrained_layout=True)
    draw(full, tids, spans, depth, (start, end))
    full.set_yticklabels(labels)
    full.set_title(
        f"quickstart run, traced: {len(spans)} spans ({sum(1 for s in spans if s['cat'] == 'process')} steps)"
    )
    draw(near, tids, spans, depth, zoom, labels=True)
    near.set_yticklabels(labels)
    near.set_title("zoom: the 10th epoch's end; the evaluation and checkpoint tasks run beside the next steps")
    near.set_xlabel("time since the tracer was created (ms)")
    near.legend(
        handles=[Patch(color=c, label=k) for k, c in COLOURS.items() if any(s["cat"] == k for s in spans)],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=8,
        fontsize=9,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "quickstart-trace.png")
    parser.add_argument("--keep", type=Path, default=None, help="a directory to keep the run's trace JSON in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or Path(scratch)
        trace = anyio.run(traced_run, args.epochs, directory)
        render(trace, args.out)
        print(f"trace: {trace if args.keep else '(temporary)'}; picture: {args.out}")


if __name__ == "__main__":
    main()
