"""The learning rate range test (fastai's ``lr_find``): raise the learning rate each iteration, watch the loss."""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch.optim import Optimizer

from ignite_async.distributed.comm import all_reduce
from ignite_async.engine import Engine, Events

__all__ = ["FastaiLRFinder"]


def _identity(output: Any) -> Any:
    return output


def _lrs(value: float | list[float] | None, name: str, optimizer: Optimizer) -> list[float] | None:
    groups = len(optimizer.param_groups)
    if value is None:
        return None
    if isinstance(value, float):
        return [value] * groups
    if isinstance(value, list):
        if len(value) != groups:
            raise ValueError(
                f"{name} has {len(value)} values but the optimizer has {groups} param groups: give one per group"
            )
        return value
    raise TypeError(f"{name} should be a float or list of floats, but given {type(value)}")


class _Schedule:
    """The learning rates of the range test, one step per iteration, for each param group.

    As pytorch-ignite 0.5.5 runs it: the value of step ``k`` (from 0) is recorded at the end of iteration
    ``k + 1`` and set for the next one. Exponential: ``start * (end / start) ** ((k + 1) / num_iter)``, with
    the first iteration at ``lr * (end / lr) ** (1 / num_iter)`` from the optimizer's own ``lr``. Linear:
    ``start + (end - start) * k / num_iter``, the first iteration at the optimizer's ``lr``.
    """

    def __init__(self, optimizer: Optimizer, starts: list[float], ends: list[float], num_iter: int, mode: str) -> None:
        self.optimizer, self.starts, self.ends, self.num_iter, self.mode = optimizer, starts, ends, num_iter, mode
        self.step = 0
        if mode == "exp":
            for group, end in zip(optimizer.param_groups, ends, strict=True):
                lr = group.get("initial_lr", group["lr"])
                group["lr"] = lr * (end / lr) ** (1 / num_iter)

    def values(self) -> list[float]:
        k = self.step
        if self.mode == "exp":
            r = (k + 1) / self.num_iter
            return [s * (e / s) ** r for s, e in zip(self.starts, self.ends, strict=True)]
        return [
            s + (e - s) * min(k, self.num_iter) / self.num_iter for s, e in zip(self.starts, self.ends, strict=True)
        ]

    def get_param(self) -> float | list[float]:
        values = self.values()
        return values[0] if len(values) == 1 else values

    def advance(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.values(), strict=True):
            group["lr"] = lr
        self.step += 1


class FastaiLRFinder:
    """pytorch-ignite 0.5.5's learning rate finder: while attached, the learning rate rises each iteration from
    ``start_lr`` to ``end_lr`` and the (smoothed) loss is recorded; the run stops once the loss diverges.

    :meth:`attach` is a context manager: inside it the trainer runs the range test, and on leaving it the
    trainer's state and everything in ``to_save`` (the model, the optimizer) are as they were, also when the
    body raised. All the trainer's other handlers run during the test too. The body awaits the run.

    >>> import asyncio, warnings
    >>> import torch
    >>> from ignite_async import Engine
    >>> from ignite_async.handlers import FastaiLRFinder
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    >>> data = [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(20)]
    >>> def step(engine, batch):
    ...     optimizer.zero_grad()
    ...     loss = torch.nn.functional.mse_loss(model(batch[0]), batch[1])
    ...     loss.backward()
    ...     optimizer.step()
    ...     return loss.item()
    >>> trainer = Engine(step)
    >>> lr_finder = FastaiLRFinder()
    >>> async def find():
    ...     with lr_finder.attach(trainer, to_save={"model": model, "optimizer": optimizer}) as trainer_with_lr_finder:
    ...         await trainer_with_lr_finder.run(data)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # "Run completed without loss diverging" on so few iterations
    ...     asyncio.run(find())
    >>> len(lr_finder.get_results()["lr"]) == len(lr_finder.get_results()["loss"])
    True
    >>> optimizer.param_groups[0]["lr"]  # restored
    0.001
    >>> lr_finder.lr_suggestion() > 1e-3
    True
    """

    def __init__(self) -> None:
        self._diverge_flag = False
        self._history: dict[str, list[Any]] = {}
        self._best_loss: float | None = None
        self._lr_schedule: _Schedule | None = None
        self.logger = logging.getLogger(f"{__name__}.{type(self).__name__}")

    def attach(
        self,
        trainer: Engine,
        to_save: Mapping[str, Any],
        output_transform: Callable[[Any], Any] = _identity,
        num_iter: int | None = None,
        start_lr: float | list[float] | None = None,
        end_lr: float | list[float] | None = 10.0,
        step_mode: str = "exp",
        smooth_f: float = 0.05,
        diverge_th: float = 5.0,
    ) -> Any:
        """Run the range test on ``trainer`` inside the ``with`` block, and restore everything after it.

        Arguments are checked here, at the call.

        :param trainer: the trainer the test runs on; it is what ``with`` gives.
        :param to_save: what the test changes and that is restored after it, each with ``state_dict`` and
            ``load_state_dict``; ``"optimizer"`` (a torch optimizer) is required, e.g.
            ``{"model": model, "optimizer": optimizer}``.
        :param output_transform: ``f(state.output)`` -> the iteration's loss (a float or a one-element tensor).
        :param num_iter: iterations from ``start_lr`` to ``end_lr``; by default the run's ``epoch_length *
            max_epochs`` (and the run is made longer if it is shorter than ``num_iter``).
        :param start_lr: lowest learning rate (one per param group as a list); by default the optimizer's.
        :param end_lr: highest learning rate, 10.0 by default.
        :param step_mode: ``"exp"`` or ``"linear"``: how the learning rate rises.
        :param smooth_f: loss smoothing, in ``[0, 1)``.
        :param diverge_th: the test stops when the loss is over ``diverge_th`` times the best one; at least 1.
        :raises TypeError: for a ``to_save`` that is not a mapping, an object in it without ``state_dict`` or
            ``load_state_dict``, an ``"optimizer"`` that is not a torch optimizer, or a ``num_iter``,
            ``start_lr`` or ``end_lr`` of the wrong type.
        :raises ValueError: for a ``to_save`` without ``"optimizer"``, or a value out of its range.
        :return: a context manager whose ``with ... as`` target is ``trainer``.
        """
        if not isinstance(trainer, Engine):
            raise TypeError(f"trainer should be an ignite_async Engine, but given {type(trainer)}")
        if not isinstance(to_save, Mapping):
            raise TypeError(f"Argument to_save should be a mapping, but given {type(to_save)}")
        for key, obj in to_save.items():
            for method in ("state_dict", "load_state_dict"):
                if not callable(getattr(obj, method, None)):
                    raise TypeError(f"Object to_save[{key!r}] of {type(obj)} should have `{method}` method")
        if "optimizer" not in to_save:
            raise ValueError(
                "Mapping to_save should contain 'optimizer' key: the optimizer whose learning rate the finder "
                "raises, e.g. to_save={'model': model, 'optimizer': optimizer}"
            )
        optimizer = to_save["optimizer"]
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Object to_save['optimizer'] should be torch optimizer, but given {type(optimizer)}")
        if not 0 <= smooth_f < 1:
            raise ValueError(f"smooth_f is outside the range [0, 1): {smooth_f!r}")
        if diverge_th < 1:
            raise ValueError(f"diverge_th should be larger than 1, got {diverge_th!r}")
        if step_mode not in ("exp", "linear"):
            raise ValueError(f"step_mode should be 'exp' or 'linear', but given {step_mode}")
        if num_iter is not None:
            if isinstance(num_iter, bool) or not isinstance(num_iter, int):
                raise TypeError(f"if provided, num_iter should be an integer, but given {num_iter!r}")
            if num_iter <= 0:
                raise ValueError(f"if provided, num_iter should be positive, but given {num_iter}")
        starts = _lrs(start_lr, "start_lr", optimizer) or [group["lr"] for group in optimizer.param_groups]
        ends = _lrs(end_lr, "end_lr", optimizer)
        if ends is None:
            raise TypeError(f"end_lr should be a float or list of floats, but given {type(end_lr)}")
        for start, end in zip(starts, ends, strict=True):
            if start >= end:
                raise ValueError(f"start_lr must be less than end_lr, start_lr={start_lr} vs end_lr={end_lr}")
        settings = (optimizer, output_transform, num_iter, starts, ends, step_mode, smooth_f, diverge_th)
        return self._attached(trainer, to_save, settings)

    @contextmanager
    def _attached(self, trainer: Engine, to_save: Mapping[str, Any], settings: tuple[Any, ...]) -> Iterator[Engine]:
        saved = io.BytesIO()  # in host memory, whatever the device: the state is restored where it was
        torch.save({"trainer": trainer.state_dict(), **{k: o.state_dict() for k, o in to_save.items()}}, saved)
        if not trainer.has_event_handler(self._run, Events.STARTED):
            trainer.add_event_handler(Events.STARTED, self._run, *settings)
        if not trainer.has_event_handler(self._warning, Events.COMPLETED):
            trainer.add_event_handler(Events.COMPLETED, self._warning)
        if not trainer.has_event_handler(self._reset, Events.COMPLETED):
            trainer.add_event_handler(Events.COMPLETED, self._reset)
        try:
            yield trainer
        finally:
            self._detach(trainer)
            saved.seek(0)
            state = torch.load(saved, weights_only=True)
            trainer.load_state_dict(state.pop("trainer"))
            for key, obj in to_save.items():
                obj.load_state_dict(state[key])

    def _run(
        self,
        trainer: Engine,
        optimizer: Optimizer,
        output_transform: Callable[[Any], Any],
        num_iter: int | None,
        starts: list[float],
        ends: list[float],
        step_mode: str,
        smooth_f: float,
        diverge_th: float,
    ) -> None:
        self._history = {"lr": [], "loss": []}
        self._best_loss = None
        self._diverge_flag = False
        length = trainer.state.epoch_length or 0
        planned = length * (trainer.state.max_epochs or 0)
        if num_iter is None:
            num_iter = planned
        elif planned < num_iter:
            trainer.state.max_iters = num_iter
            trainer.state.max_epochs = math.ceil(num_iter / length)
        if not trainer.has_event_handler(self._reached_num_iterations, Events.ITERATION_COMPLETED):
            trainer.add_event_handler(Events.ITERATION_COMPLETED, self._reached_num_iterations, num_iter)
        if not trainer.has_event_handler(self._log_lr_and_loss, Events.ITERATION_COMPLETED):
            trainer.add_event_handler(
                Events.ITERATION_COMPLETED, self._log_lr_and_loss, output_transform, smooth_f, diverge_th
            )
        self.logger.debug(f"Running LR finder for {num_iter} iterations")
        self._lr_schedule = _Schedule(optimizer, starts, ends, num_iter, step_mode)
        if not trainer.has_event_handler(self._step_lr, Events.ITERATION_COMPLETED):
            trainer.add_event_handler(Events.ITERATION_COMPLETED, self._step_lr)

    def _step_lr(self) -> None:
        if self._lr_schedule is not None:
            self._lr_schedule.advance()

    def _log_lr_and_loss(
        self, trainer: Engine, output_transform: Callable[[Any], Any], smooth_f: float, diverge_th: float
    ) -> None:
        loss = output_transform(trainer.state.output)
        if not isinstance(loss, float):
            if isinstance(loss, torch.Tensor):
                if loss.ndim == 0 or (loss.ndim == 1 and len(loss) == 1):
                    loss = loss.item()
                else:
                    raise ValueError(
                        "if output of the engine is torch.Tensor, then it must be 0d torch.Tensor or 1d "
                        f"torch.Tensor with 1 element, but got torch.Tensor of shape {loss.shape}."
                    )
            else:
                raise TypeError(
                    "output of the engine should be of type float or 0d torch.Tensor or 1d torch.Tensor with 1 "
                    f"element, but got output of type {type(loss).__name__}. Give attach() an output_transform "
                    "that picks the loss, e.g. output_transform=lambda output: output['train_loss']"
                )
        loss = all_reduce(loss)
        assert self._lr_schedule is not None
        self._history["lr"].append(self._lr_schedule.get_param())
        if trainer.state.iteration != 1 and smooth_f > 0:
            loss = smooth_f * loss + (1 - smooth_f) * self._history["loss"][-1]
        if self._best_loss is None or loss < self._best_loss:
            self._best_loss = loss
        self._history["loss"].append(loss)
        if self._history["loss"][-1] > diverge_th * self._best_loss:
            self._diverge_flag = True
            self.logger.info("Stopping early, the loss has diverged")
            trainer.terminate()

    def _reached_num_iterations(self, trainer: Engine, num_iter: int) -> None:
        if trainer.state.iteration > num_iter:
            trainer.terminate()

    def _warning(self) -> None:
        if not self._diverge_flag:
            warnings.warn(
                "Run completed without loss diverging, increase end_lr, decrease diverge_th or look at "
                "lr_finder.plot()",
                UserWarning,
                stacklevel=2,
            )

    def _reset(self, trainer: Engine) -> None:
        self.logger.debug("Completed LR finder run")
        for handler in (self._step_lr, self._log_lr_and_loss, self._reached_num_iterations):
            if trainer.has_event_handler(handler, Events.ITERATION_COMPLETED):
                trainer.remove_event_handler(handler, Events.ITERATION_COMPLETED)

    def _detach(self, trainer: Engine) -> None:
        self._reset(trainer)
        for handler, event in ((self._run, Events.STARTED), (self._warning, Events.COMPLETED)):
            if trainer.has_event_handler(handler, event):
                trainer.remove_event_handler(handler, event)
        if trainer.has_event_handler(self._reset, Events.COMPLETED):
            trainer.remove_event_handler(self._reset, Events.COMPLETED)

    def get_results(self) -> dict[str, list[Any]]:
        """The last test's history: ``{"lr": [...], "loss": [...]}``, a value per iteration (an ``lr`` is a list
        when the optimizer has several param groups); empty before any test."""
        return self._history

    def lr_suggestion(self) -> Any:
        """The learning rate where the loss falls fastest, before its minimum.

        :raises RuntimeError: before a test, or when the loss curve has fewer than 3 points down to its minimum.
        """
        if not self._history:
            raise RuntimeError("learning rate finder didn't run yet so lr_suggestion can't be returned")
        losses = self._history["loss"]
        lowest = min(range(len(losses)), key=losses.__getitem__)
        falling = losses[: lowest + 1]
        if len(falling) < 3:
            raise RuntimeError(
                "FastaiLRFinder got unexpected curve shape, the curve should be somehow U-shaped, "
                "please decrease start_lr or increase end_lr to resolve this issue."
            )
        slopes = [0.5 * (falling[i + 1] - falling[i - 1]) for i in range(1, len(falling) - 1)]
        return self._history["lr"][min(range(len(slopes)), key=slopes.__getitem__) + 1]

    def apply_suggested_lr(self, optimizer: Optimizer) -> None:
        """Set :meth:`lr_suggestion` as ``optimizer``'s learning rate(s).

        :raises RuntimeError: if ``optimizer`` has another number of param groups than the tested one.
        """
        suggested = self.lr_suggestion()
        lrs = suggested if isinstance(suggested, list) else [suggested]
        if len(lrs) != len(optimizer.param_groups):
            raise RuntimeError(
                "The number of parameter groups does not match between given optimizer and the one used for "
                f"estimating the learning rate: {len(lrs)} vs {len(optimizer.param_groups)}"
            )
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def plot(
        self,
        skip_start: int = 10,
        skip_end: int = 5,
        log_lr: bool = True,
        display_suggestion: bool = True,
        ax: Any | None = None,
        **kwargs: Any,
    ) -> Any:
        """Plot the loss against the learning rate, with matplotlib, and return the axes.

        :param skip_start: points left out at the start.
        :param skip_end: points left out at the end.
        :param log_lr: a logarithmic learning rate axis.
        :param display_suggestion: mark :meth:`lr_suggestion` with a red dot.
        :param ax: the axes to draw on; new ones (``plt.subplots(**kwargs)``) by default.
        :raises ModuleNotFoundError: without matplotlib, naming ``pip install 'ignite-async[plot]'``.
        :raises RuntimeError: before a test.
        :raises ValueError: for a negative ``skip_start`` or ``skip_end``.
        """
        try:
            from matplotlib import pyplot as plt
        except ImportError:
            raise ModuleNotFoundError(
                "FastaiLRFinder.plot() needs matplotlib; install it with: pip install 'ignite-async[plot]'"
            ) from None
        if not self._history:
            raise RuntimeError("learning rate finder didn't run yet so results can't be plotted")
        if skip_start < 0:
            raise ValueError("skip_start cannot be negative")
        if skip_end < 0:
            raise ValueError("skip_end cannot be negative")
        lrs, losses = self._history["lr"], self._history["loss"]
        groups = len(lrs[0]) if isinstance(lrs[0], list) else 1
        if ax is None:
            _, ax = plt.subplots(**kwargs)
        if display_suggestion:
            suggested = self.lr_suggestion()
            index = lrs.index(suggested)
            if skip_start >= index:
                warnings.warn(
                    "skip_start is larger than the suggested LR found and it will not be visible on the plot. "
                    "Please, make the value smaller.",
                    UserWarning,
                    stacklevel=2,
                )
            points = suggested if isinstance(suggested, list) else [suggested]
            for lr in points:
                color = "red" if len(points) == 1 else None
                ax.scatter(lr, losses[index], color=color, s=75, marker="o", zorder=3)
        end = len(lrs) - skip_end
        lrs, losses = lrs[skip_start:end], losses[skip_start:end]
        plt.legend([f"suggested lr for param_groups {i}" for i in range(groups)])
        ax.plot(lrs, losses)
        if log_lr:
            ax.set_xscale("log")
        lowest = min(lrs[0]) if isinstance(lrs[0], list) else lrs[0]
        highest = max(lrs[-1]) if isinstance(lrs[-1], list) else lrs[-1]
        ax.set_xlim([lowest, highest])
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Loss")
        plt.show()
        return ax
