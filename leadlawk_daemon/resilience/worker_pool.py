"""Work on untrusted input in worker processes that can be stopped, each task within a CPU budget.

Why processes: CPython's ``re`` (and any C extension) holds the GIL for a whole call, so a page
that makes a pattern backtrack stops every thread of the process, the event loop's included, and
a thread cannot be interrupted at all. A process can be killed. Each task runs in a worker with
its budget armed as a profiling timer (``ITIMER_PROF``: CPU time, user and system, to the
millisecond); ``SIGPROF``'s default action kills the worker even inside C code. ``RLIMIT_CPU``
(whole seconds, ``SIGXCPU``) backs the timer up should anything in the worker install a SIGPROF
handler, and the parent kills a worker that holds a task past ``wall`` seconds of real time
(a task that sleeps, or waits on a lock, burns no CPU). The caller hears :class:`BudgetExceeded`;
a worker that dies another way (out of memory, a crash) is :class:`WorkerDied`; either way the
next task gets a fresh worker. Only when no worker can be started at all is it the pool's fault,
:class:`PoolUnavailable`.

Workers are plain ``python -m leadlawk_daemon.resilience.worker_process`` children (exec'd, never
forked: the daemon runs Playwright's threads) speaking length-prefixed pickles over their stdin
and stdout, so the parent's side is asyncio streams and waits on nothing. A task is a picklable
module-level function and its arguments: send ``bytes``, not ``str`` (a 2 MB body pickles as one
copy; the same page as ``str`` is encoded on the loop first).

Bounds: ``workers`` processes; a caller waits for one of them (its own coroutine is its place in
the line, so the line is as long as the callers' own concurrency, each bounded by its actor).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import subprocess
import sys
from asyncio.streams import FlowControlMixin
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

from leadlawk_daemon.resilience import worker_process
from leadlawk_daemon.resilience.worker_process import BUDGET_SIGNALS, HEADER, PATH_VARIABLE, READY

__all__ = ["TOO_SLOW", "BudgetExceeded", "PoolUnavailable", "TaskLost", "WorkerDied", "WorkerPool"]

T = TypeVar("T")

TOO_SLOW: Final = "too slow"
_MAX_FRAME = 256 * 1024 * 1024  # a corrupt length must not become a huge allocation


class TaskLost(Exception):
    """The task ended without an answer; its input is what was wrong (``reason`` says how)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BudgetExceeded(TaskLost):
    """The task used its CPU budget (or ``wall`` seconds): the worker was stopped."""

    def __init__(self) -> None:
        super().__init__(TOO_SLOW)


class WorkerDied(TaskLost):
    """The worker died under the task for another reason (out of memory, a crash)."""


class PoolUnavailable(Exception):
    """No worker could be started (or the pool is closed): ours, not the input's."""


class _Worker:
    """One child process, its two pipes as asyncio streams, and its exit as a pidfd the loop watches."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.to_child: asyncio.StreamWriter | None = None
        self.from_child = asyncio.StreamReader(limit=2**16)
        self._reading: asyncio.BaseTransport | None = None
        self._exited: asyncio.Future[None] | None = None

    @classmethod
    async def start(cls, argv: list[str], env: dict[str, str]) -> _Worker:
        # subprocess, not asyncio's: uvloop spawns with fork(), which copies the daemon's page
        # tables on the loop (measured 90-100 ms with a 300 MB heap); Popen uses vfork (< 1 ms).
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)  # noqa: ASYNC220
        worker = cls(process)
        try:
            assert process.stdin is not None
            assert process.stdout is not None
            loop = asyncio.get_running_loop()
            reading = asyncio.StreamReaderProtocol(worker.from_child)
            worker._reading, _ = await loop.connect_read_pipe(lambda: reading, process.stdout)
            transport, writing = await loop.connect_write_pipe(FlowControlMixin, process.stdin)
            worker.to_child = asyncio.StreamWriter(transport, writing, None, loop)
        except BaseException:
            await asyncio.shield(worker.stop(1.0))
            raise
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def send(self, payload: bytes) -> None:
        assert self.to_child is not None
        self.to_child.writelines((HEADER.pack(len(payload)), payload))
        await self.to_child.drain()

    async def receive(self) -> bytes:
        (size,) = HEADER.unpack(await self.from_child.readexactly(HEADER.size))
        if size > _MAX_FRAME:
            raise ConnectionError(f"worker sent a frame of {size} bytes")
        return await self.from_child.readexactly(size)

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def wait(self) -> int:
        """Its exit status once it has exited; the loop is never blocked waiting for it."""
        if self.process.returncode is not None:
            return self.process.returncode
        if self._exited is None:
            loop = asyncio.get_running_loop()
            exited = self._exited = loop.create_future()
            pidfd = os.pidfd_open(self.process.pid)

            def readable() -> None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(pidfd, readable)
        await asyncio.shield(self._exited)
        return self.process.wait()  # reaps at once: it has exited

    async def stop(self, deadline: float) -> None:
        """Terminate, then kill what outlives half the deadline: it is gone (reaped) on return.

        A worker holds no state worth a goodbye, and SIGTERM ends it at once where closing its
        stdin would wait for its interpreter's orderly exit (about 0.1 s).
        """
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                async with asyncio.timeout(deadline / 2):
                    await self.wait()
            except TimeoutError:
                self.kill()
            await self.wait()
        if self.to_child is not None:
            self.to_child.close()
        if self._reading is not None:
            self._reading.close()


class _Slot:
    """A place for one worker; empty after its worker was lost, filled again before the next task."""

    __slots__ = ("worker",)

    def __init__(self) -> None:
        self.worker: _Worker | None = None


class WorkerPool:
    """``async with WorkerPool(budget=2.0) as pool: await pool.run(fn, data)``.

    ``budget``: CPU seconds per task; ``wall``: real seconds per task (default three budgets: the
    machine is shared); ``preload``: modules every worker imports before it says it is ready, so
    their import is paid at start and not out of the first task's budget.
    """

    def __init__(
        self,
        *,
        workers: int = 1,
        budget: float = 2.0,
        wall: float | None = None,
        preload: Sequence[str] = (),
        start_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"worker pool: workers must be at least 1 (got {workers})")
        if budget <= 0:
            raise ValueError(f"worker pool: budget must be positive (got {budget})")
        self.workers = workers
        self.budget = budget
        self.wall = 3 * budget if wall is None else wall
        self.preload = tuple(preload)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._slots = [_Slot() for _ in range(workers)]
        self._idle: list[_Slot] = []
        self._turns = asyncio.Semaphore(workers)
        self._running = False

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids (for tests and diagnostics)."""
        return [slot.worker.pid for slot in self._slots if slot.worker is not None]

    @property
    def busy(self) -> int:
        """Workers given a task (or starting for one) now."""
        return self.workers - len(self._idle) if self._running else 0

    async def __aenter__(self) -> WorkerPool:
        self._running = True
        self._idle = list(self._slots)
        try:
            # Every worker now, so a pool that cannot start fails at start, not on a lead.
            async with asyncio.TaskGroup() as group:
                for slot in self._slots:
                    group.create_task(self._fill(slot))
        except BaseException as exc:
            await self.close()
            unavailable = _first_unavailable(exc)
            if unavailable is not None:
                raise unavailable from None
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every worker within ``stop_timeout``; a task still running hears PoolUnavailable."""
        self._running = False
        workers = [slot.worker for slot in self._slots if slot.worker is not None]
        for slot in self._slots:
            slot.worker = None
        # Shielded: a shutdown cancelled half-way must still not leave processes behind.
        stopping = asyncio.gather(*(worker.stop(self.stop_timeout) for worker in workers))
        await asyncio.shield(stopping)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker; raises :class:`BudgetExceeded`, :class:`WorkerDied`,
        :class:`PoolUnavailable`, or what ``fn`` raised."""
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        async with self._turns:
            if not self._running:
                raise PoolUnavailable("the worker pool is not running")
            slot = self._idle.pop()
            try:
                if slot.worker is not None and slot.worker.process.poll() is not None:
                    # It died idle (killed from outside): not this task's doing, a fresh one takes it.
                    await slot.worker.stop(self.stop_timeout)
                    slot.worker = None
                worker = slot.worker or await self._fill(slot)
                answer = await self._call(slot, worker, payload)
            finally:
                self._idle.append(slot)
        kind, value = pickle.loads(answer)
        if kind == "error":
            raise value
        return value  # type: ignore[no-any-return]

    async def _fill(self, slot: _Slot) -> _Worker:
        """Start a worker into ``slot`` and wait for it to say it is ready."""
        # The parent's import path, as multiprocessing's spawn passes it: a task's function is
        # found in the worker where it was found here.
        env = {**os.environ, PATH_VARIABLE: os.pathsep.join(sys.path)}
        argv = [sys.executable, "-m", worker_process.__name__, repr(self.budget), *self.preload]
        try:
            worker = await _Worker.start(argv, env)
        except OSError as exc:
            raise PoolUnavailable(f"cannot start a worker process: {exc}") from exc
        try:
            async with asyncio.timeout(self.start_timeout):
                ready = await worker.receive()
            if ready != READY:
                raise ConnectionError("the worker did not say it was ready")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            await worker.stop(self.stop_timeout)
            raise PoolUnavailable(
                f"a worker process did not start (exit status {worker.returncode}): {exc or type(exc).__name__}"
            ) from exc
        except BaseException:
            await asyncio.shield(worker.stop(self.stop_timeout))
            raise
        if not self._running:  # closed while it started
            await worker.stop(self.stop_timeout)
            raise PoolUnavailable("the worker pool closed")
        slot.worker = worker
        return worker

    async def _call(self, slot: _Slot, worker: _Worker, payload: bytes) -> bytes:
        # Real time on purpose: the backstop is about a real process holding a real core.
        try:
            async with asyncio.timeout(self.wall):
                await worker.send(payload)
                return await worker.receive()
        except TimeoutError:
            lost: TaskLost = BudgetExceeded()
        except (ConnectionError, asyncio.IncompleteReadError):
            status = await worker.wait()
            if not self._running:
                raise PoolUnavailable("the worker pool closed under the task") from None
            lost = BudgetExceeded() if -status in BUDGET_SIGNALS else WorkerDied(_death(status))
        except BaseException:
            # The caller gave up (its job stopped): the answer will not be read, and a worker
            # cannot be told to drop a task, so it goes; the next caller starts another.
            slot.worker = None
            worker.kill()
            await asyncio.shield(worker.stop(self.stop_timeout))
            raise
        slot.worker = None
        worker.kill()
        await worker.stop(self.stop_timeout)
        # The next task starts a replacement (about 0.1 s): this caller has its answer now, and
        # a worker that cannot start is then that caller's PoolUnavailable, not this page's fact.
        raise lost


def _death(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"worker process died ({name})"
    return f"worker process exited with status {status}"


def _first_unavailable(exc: BaseException) -> PoolUnavailable | None:
    if isinstance(exc, PoolUnavailable):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_unavailable(inner)
            if found is not None:
                return found
    return None
