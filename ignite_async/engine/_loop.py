"""The run loop: one coroutine that can *pause* when the run is interrupted, and be resumed later.

This is pytorch-ignite 0.5.5's ``_internal_run_as_gen`` and ``_run_once_on_dataset_as_gen`` merged into one
body. Keeping the same structure (the same try blocks in the same places) is what keeps event order,
counters, and exception behaviour identical.

pytorch-ignite pauses with a generator ``yield``. An async generator would do the same here but cannot be
resumed by a second ``asyncio.run(engine.run())``: asyncio closes every live async generator when its loop
shuts down. So the body is a plain coroutine that awaits :func:`_pause`, and :func:`drive` runs it,
forwarding everything it awaits to the event loop except the pause sentinel, on which it returns, leaving
the coroutine suspended for the next :meth:`Engine.run <ignite_async.Engine.run>` to continue, in any loop.

The per-iteration path fires four events. A fire with no handlers must cost next to nothing, so the loop
looks the handler list up itself and awaits the dispatch only when there is one, and checks a single
cached flag for stop requests; pytorch-ignite's ``_maybe_terminate_or_interrupt`` becomes
``if engine._stop_requested and await _stop_point(engine): await _pause()``.
"""

from __future__ import annotations

import time
import types
import warnings
from collections.abc import Coroutine, Generator
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ignite_async.engine.errors import InterruptHandlerError
from ignite_async.engine.events import Events

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["drive", "run_body"]

STARTED = Events.STARTED
EPOCH_STARTED = Events.EPOCH_STARTED
EPOCH_COMPLETED = Events.EPOCH_COMPLETED
GET_BATCH_STARTED = Events.GET_BATCH_STARTED
GET_BATCH_COMPLETED = Events.GET_BATCH_COMPLETED
ITERATION_STARTED = Events.ITERATION_STARTED
ITERATION_COMPLETED = Events.ITERATION_COMPLETED
DATALOADER_STOP_ITERATION = Events.DATALOADER_STOP_ITERATION


_PAUSE = object()


@types.coroutine
def _pause() -> Generator[Any, Any, None]:
    """Suspend the run body; :func:`drive` sees the sentinel and returns instead of passing it on."""
    yield _PAUSE


@types.coroutine
def drive(body: Coroutine[Any, Any, None]) -> Generator[Any, Any, bool]:
    """Run ``body`` until it finishes (return True) or pauses (return False).

    Like ``await body``, but it can stop at a pause and be called again later to continue.
    Values the body awaits go to the event loop; what the loop sends or throws (results, cancellation)
    goes back to the body.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            signal = body.throw(error) if error is not None else body.send(value)
        except StopIteration:
            return True
        if signal is _PAUSE:
            return False
        value, error = None, None
        try:
            value = yield signal
        except BaseException as exc:
            error = exc


# With nothing running beside it, the loop still yields this often, so that a cancellation from outside
# or terminate() from another task is seen within a few ms even when every step and handler is sync.
YIELD_INTERVAL = 0.005


class _Terminate(Exception):
    pass


class _BackgroundFailed(BaseException):
    """Carries a background task's error past the per-epoch ``except Exception``: it fails the run."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class _TerminateSingleEpoch(Exception):
    pass


async def _stop_point(engine: Engine) -> bool:
    """Act on a stop request: raise for terminate requests; fire INTERRUPT and return True to pause."""
    if engine._data_switched:  # set_data(): close what the old data left (not a stop)
        engine._data_switched = False
        engine._update_stop_requested()
        await engine._feed.close_abandoned()
    if engine._background_error is not None:
        raise _BackgroundFailed(engine._background_error)
    if engine._should_terminate:
        raise _Terminate
    if engine._should_terminate_single_epoch:
        raise _TerminateSingleEpoch
    if engine._should_interrupt:
        await engine._fire_event(Events.INTERRUPT)
        engine.should_interrupt = False
        return True
    return False


async def _stopped_from_outside(engine: Engine, stop: BaseException) -> None:
    """Cancelled from outside, or Ctrl-C: give INTERRUPT handlers a shielded grace period to save the
    (rewound, resumable) state. If one fails or they run out of time, raise :class:`InterruptHandlerError`
    in place of the cancellation (which is its context): the caller must not believe that state was saved."""
    engine._cancelling = True  # tasks can no longer be started: handlers must do their work inline
    failure: BaseException | None = None
    grace = engine.cancel_grace_period
    try:
        with anyio.move_on_after(grace, shield=True) as scope:
            try:
                await engine._fire_event(Events.INTERRUPT)
            except Exception as exc:
                failure = exc
    finally:
        engine._cancelling = False
    if failure is None and scope.cancelled_caught:
        failure = TimeoutError(f"INTERRUPT handlers did not finish within cancel_grace_period={grace} s")
    if failure is not None:
        how = "interrupted by Ctrl-C" if isinstance(stop, KeyboardInterrupt) else "cancelled"
        raise InterruptHandlerError(
            f"the run was {how} at iteration {engine.state.iteration} and an INTERRUPT handler failed: "
            f"{failure!r}; what it should have saved (e.g. a final checkpoint) may be missing",
            failure,
        ) from failure


async def _handle_exception(engine: Engine, exc: BaseException) -> None:
    if engine._event_handlers.get("EXCEPTION_RAISED"):
        await engine._fire_event(Events.EXCEPTION_RAISED, exc)
    else:
        raise exc


async def run_body(engine: Engine) -> None:
    e = engine
    state = e.state
    feed = e._feed
    handlers = e._event_handlers  # the dict itself never changes, only its lists
    tracer = e._tracer  # None unless a Tracer is attached: then the fetch and the step are recorded too
    fetch_span = 0
    base_depth = 0 if tracer is None else tracer.depth()  # spans an error leaves open are closed down to this
    e._clear_stop_requests()
    state.times["EPOCH_COMPLETED"] = 0.0
    state.times["COMPLETED"] = 0.0
    start_time = time.time()
    e._run_started_at = time.monotonic()
    e._completed_iteration = state.iteration
    next_yield = e._run_started_at + YIELD_INTERVAL
    try:
        try:
            await e._fire_event(STARTED)
            # Read after STARTED: its handlers may wrap the process function (HandlersTimeProfiler does).
            process = e._process_function
            process_is_async = e._process_is_async
            if e._stop_requested and await _stop_point(e):
                await _pause()
            while not e._is_done(state) and not e._should_terminate:
                state.epoch += 1
                handlers_start = time.time()
                await e._fire_event(EPOCH_STARTED)
                epoch_time = time.time() - handlers_start
                if e._stop_requested and await _stop_point(e):
                    await _pause()
                if feed.iterator is None:
                    e._setup_engine()
                    await feed.close_abandoned()

                # ---- one epoch over the data (pytorch-ignite's _run_once_on_dataset) ----
                epoch_start = time.time()
                iter_counter = 0 if e._init_iter is None else e._init_iter
                e._init_iter = None
                should_exit = False
                has_data = state.dataloader is not None
                try:
                    while True:
                        state.batch = None
                        try:
                            # After a restart the fetch is retried without a second GET_BATCH_STARTED.
                            if e.last_event_name is not DATALOADER_STOP_ITERATION and has_data:
                                e.last_event_name = GET_BATCH_STARTED
                                if h := handlers.get("GET_BATCH_STARTED"):
                                    await e._call_handlers(h)
                                if e._stop_requested and await _stop_point(e):
                                    await _pause()
                            if tracer is not None:
                                fetch_span = tracer.begin("fetch", "data", state.iteration + 1)
                            if feed.replay is not None:  # the batch of an iteration that was cut short
                                state.batch = feed.take_replay()
                            elif feed.is_async:
                                state.batch = await feed.anext()
                            else:
                                state.batch = next(feed.iterator)
                            if tracer is not None:
                                tracer.end(fetch_span)
                            state.output = None
                            if has_data:
                                e.last_event_name = GET_BATCH_COMPLETED
                                if h := handlers.get("GET_BATCH_COMPLETED"):
                                    await e._call_handlers(h)
                                if e._stop_requested and await _stop_point(e):
                                    await _pause()
                            iter_counter += 1
                            should_exit = False
                        except (StopIteration, StopAsyncIteration):
                            if tracer is not None:  # the fetch that found the data's end
                                tracer.end(fetch_span)
                            if should_exit:
                                # The data ran out twice in a row: a fresh iterator gave nothing either.
                                # Nothing at all in the first epoch, from data that no iteration of this
                                # engine has used (a generator used up before only warns, as in pytorch-ignite).
                                if (
                                    state.epoch == 1
                                    and iter_counter == 0
                                    and e._data_unused
                                    and e._last_completed is e._data_given_at
                                ):
                                    raise _empty_data_error(state.dataloader) from None
                                if not e._is_done(state):
                                    warnings.warn(  # UserWarning, as pytorch-ignite's
                                        "the data iterator can provide no more data but the run has not reached "
                                        f"its end: iteration {state.iteration} of "
                                        f"{_total_iterations(e)}",
                                        UserWarning,
                                        stacklevel=1,
                                    )
                                break
                            if has_data:
                                await e._fire_event(DATALOADER_STOP_ITERATION)
                                if e._stop_requested and await _stop_point(e):
                                    await _pause()
                            e._setup_dataloader_iter()
                            await feed.close_abandoned()
                            should_exit = True
                            continue

                        state.iteration += 1
                        e.last_event_name = ITERATION_STARTED
                        if h := handlers.get("ITERATION_STARTED"):
                            await e._call_handlers(h)
                        if e._stop_requested and await _stop_point(e):
                            await _pause()
                        if tracer is not None:
                            step_span = tracer.begin("process", "process", state.iteration)
                        if process_is_async:
                            state.output = await process(e, state.batch)
                        else:
                            output = process(e, state.batch)
                            if type(output) is CoroutineType:  # a sync function that returned a coroutine
                                output = await output
                            state.output = output
                        if tracer is not None:
                            tracer.end(step_span)
                        e.last_event_name = ITERATION_COMPLETED
                        if h := handlers.get("ITERATION_COMPLETED"):
                            await e._call_handlers(h)
                        e._completed_iteration = state.iteration
                        # A tuple, no copy: last_completed_state() builds the State only when asked.
                        e._last_completed = (state.iteration, state.epoch, state.output, e._run_bounds)
                        if e._stop_requested and await _stop_point(e):
                            await _pause()
                        # Let tasks beside the loop run: every iteration while some are, else now and then.
                        if e._tasks_active:
                            await anyio.lowlevel.checkpoint()
                        elif (now := time.monotonic()) >= next_yield:
                            next_yield = now + YIELD_INTERVAL
                            await anyio.lowlevel.checkpoint()
                        if iter_counter == state.epoch_length:
                            break
                        if state.max_iters is not None and state.iteration == state.max_iters:
                            e.should_terminate = True
                            raise _Terminate
                except _TerminateSingleEpoch:
                    await e._fire_event(Events.TERMINATE_SINGLE_EPOCH, iter_counter=iter_counter)
                    e._setup_dataloader_iter(for_next_epoch=True)
                    await feed.close_abandoned()
                except _Terminate:
                    raise
                except Exception as exc:
                    if tracer is not None:
                        tracer.unwind(base_depth, exc)
                    e.logger.error("Current run is terminating due to exception: %s", exc)
                    await _handle_exception(e, exc)
                epoch_time += time.time() - epoch_start
                # ---- end of the epoch ----

                state.times["EPOCH_COMPLETED"] = epoch_time
                if e._should_terminate_single_epoch != "skip_epoch_completed":
                    handlers_start = time.time()
                    await e._fire_event(EPOCH_COMPLETED)
                    epoch_time += time.time() - handlers_start
                    state.times["EPOCH_COMPLETED"] = epoch_time
                if e._should_terminate_single_epoch:
                    e.should_terminate_single_epoch = False
                if e._stop_requested and await _stop_point(e):
                    await _pause()
                e.logger.info("Epoch[%s] Complete. Time taken: %.3f s", state.epoch, epoch_time)
        except _Terminate:
            await e._fire_event(Events.TERMINATE)
        except _TerminateSingleEpoch:
            raise RuntimeError(
                "terminate_epoch() cannot be called on STARTED or EPOCH_STARTED: there is no epoch to end yet"
            ) from None
        await e._drain()  # nothing started so far is lost, nor its failure ignored
        if e._background_error is not None:
            raise _BackgroundFailed(e._background_error)
        time_taken = time.time() - start_time
        state.times["COMPLETED"] = time_taken
        if e._should_terminate != "skip_completed":
            handlers_start = time.time()
            await e._fire_event(Events.COMPLETED)
            time_taken += time.time() - handlers_start
            state.times["COMPLETED"] = time_taken
        e.logger.info("Engine run finished. Time taken: %.3f s", time_taken)
    except GeneratorExit:  # an abandoned paused run being closed
        raise
    except BaseException as exc:
        if tracer is not None:
            tracer.unwind(base_depth, exc)
        # Taken before anything fires: whether the iteration cut short had its batch in hand.
        batch_in_hand = state.iteration > e._completed_iteration or e.last_event_name is GET_BATCH_COMPLETED
        await feed.release()
        if isinstance(exc, (anyio.get_cancelled_exc_class(), KeyboardInterrupt)):
            # Ctrl-C arrives as an exception on trio (asyncio cancels the task): treated as a cancellation.
            if isinstance(exc, KeyboardInterrupt) and e._task_group is not None:
                e._task_group.cancel_scope.cancel()
            e._rewind(batch_in_hand)
            await _stopped_from_outside(e, exc)
            raise
        try:
            if isinstance(exc, _BackgroundFailed):
                # Fails the run whatever EXCEPTION_RAISED handlers do: they are told, then it is re-raised.
                if e._event_handlers.get("EXCEPTION_RAISED"):
                    await e._fire_event(Events.EXCEPTION_RAISED, exc.error)
                raise exc.error from None
            e.logger.error("Engine run is terminating due to exception: %s", exc)
            await _handle_exception(e, exc)
        except BaseException:
            # The run ends with an error; like a cancelled one it is resumable from its last completed
            # iteration (pytorch-ignite resumes after the failed one, skipping the rest of its epoch).
            e._rewind(batch_in_hand)
            raise
    await feed.release()


def _empty_data_error(data: object) -> ValueError:
    shown = repr(data)
    if len(shown) > 80:
        shown = f"{shown[:77]}..."
    return ValueError(
        f"the data {shown} gave no batch in the first epoch: it is empty. Pass data that yields batches "
        "(for an empty dataset, check how the loader was built)"
    )


def _total_iterations(engine: Engine) -> int | None:
    state = engine.state
    if state.max_epochs is not None and state.epoch_length is not None:
        return state.epoch_length * state.max_epochs
    return state.max_iters
