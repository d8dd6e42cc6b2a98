"""The parsing sandbox: files are read (parsed and chunked) in separate processes, within time, CPU and memory limits.

Uploaded files are untrusted input. A parser can be made to loop for minutes, hold the GIL, or inflate a few
kilobytes into gigabytes; none of that may happen in a process that serves requests. `ParsePool` keeps a few
warm child processes (`sandbox_child.py`) and sends each file to an idle one; a child that passes a limit is
killed (or dies at its rlimit), its file fails with the reason, and a new child takes its place. Uploads
(jobs) and `memex index` both read files through the pool of their Runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO

import structlog

from memex.errors import ParseError, ParseLimit, UnsupportedFileType
from memex.ingest import sandbox_child
from memex.ingest.prepare import Prepared, from_json
from memex.settings import Settings

log = structlog.get_logger("memex.ingest")

# Starting a child imports the parsers and loads the tokenizer: seconds on a busy machine.
_START_SECONDS = 120.0
# A child reads this many files, then a fresh one takes over (Python never gives all its memory back).
_MAX_FILES_PER_CHILD = 500
# A crash after the child's memory rose by this share of the allowance is taken for running out of memory:
# C parsers (PDFium) abort when an allocation fails instead of raising.
_MEMORY_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What reading one file may cost, and how its chunks are cut (the defaults are the settings')."""

    timeout_seconds: float
    cpu_seconds: int
    memory_mb: int
    max_chars: int
    chunk_tokens: int
    overlap_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        return cls(
            timeout_seconds=settings.parse_timeout_seconds,
            cpu_seconds=settings.parse_cpu_seconds,
            memory_mb=settings.parse_memory_mb,
            max_chars=settings.max_document_chars,
            chunk_tokens=settings.chunk_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        )

    def config(self) -> bytes:
        return json.dumps(
            {
                "cpu_seconds": self.cpu_seconds,
                "memory_mb": self.memory_mb,
                "max_chars": self.max_chars,
                "chunk_tokens": self.chunk_tokens,
                "overlap_tokens": self.overlap_tokens,
                "max_files": _MAX_FILES_PER_CHILD,
            }
        ).encode()

    def too_slow(self) -> str:
        return f"the file took longer than {self.timeout_seconds:g} s to read (MEMEX_PARSE_TIMEOUT_SECONDS)"

    def too_much_cpu(self) -> str:
        return f"the file needs more than {self.cpu_seconds} s of CPU time to read (MEMEX_PARSE_CPU_SECONDS)"

    def too_much_memory(self) -> str:
        return f"the file needs more than {self.memory_mb} MB of memory to read (MEMEX_PARSE_MEMORY_MB)"


class _Lost(Exception):
    """The child ended while reading a file; the message says why, for the user."""


class _Child:
    """One warm child process, its pipes, and how to tell why it died."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}  # no tokenizer threads in a limited process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "memex.ingest.sandbox_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: waiting on the pipe's descriptor must see every byte the child wrote
            env=env,
            start_new_session=True,  # a Ctrl-C meant for the server must not reach the parsers
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in: IO[bytes] = self.process.stdin
        self._out: IO[bytes] = self.process.stdout
        self.base_rss = 0
        try:
            sandbox_child.write_frame(self._in, limits.config())
            ready = self._receive(_START_SECONDS)
        except (_Lost, OSError) as exc:
            self.kill()
            raise RuntimeError(f"cannot start a parser process: {exc}") from exc
        if ready[:1] != b"R":
            self.kill()
            raise RuntimeError("cannot start a parser process: it did not say it was ready")
        self.base_rss = int(json.loads(ready[1:])["rss"])

    def read(self, data: bytes, name: str) -> tuple[bytes, bool]:
        """The child's answer for one file and whether the child retires; raises _Lost when it ended."""
        try:
            sandbox_child.write_frame(self._in, json.dumps({"name": name}).encode())
            sandbox_child.write_frame(self._in, data)
            frame = self._receive(self.limits.timeout_seconds)
        except _Lost:
            self.process.kill()
            self._reap()
            raise _Lost(self.limits.too_slow()) from None
        except OSError:
            frame = b""
        if len(frame) < 2:
            raise _Lost(self._why_it_died())
        return frame[:1] + frame[2:], frame[1:2] == b"1"

    def _receive(self, timeout: float) -> bytes:
        if not select.select([self._out], [], [], timeout)[0]:
            raise _Lost("no answer in time")
        return sandbox_child.read_frame(self._out) or b""

    def _why_it_died(self) -> str:
        status, peak_rss, _cpu = self._reap()
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        if signum == signal.SIGXCPU:
            return self.limits.too_much_cpu()
        grew = peak_rss - self.base_rss
        if code == sandbox_child.EXIT_MEMORY or (
            signum is not None and grew >= _MEMORY_SHARE * self.limits.memory_mb * 1024 * 1024
        ):
            return self.limits.too_much_memory()
        if signum is not None:
            return f"the parser crashed on this file ({signal.Signals(signum).name})"
        return f"the parser stopped on this file (exit status {code})"

    def _reap(self) -> tuple[int, int, float]:
        """Wait for the dead child: its wait status, peak resident memory (bytes) and CPU seconds."""
        try:
            _, status, usage = os.wait4(self.process.pid, 0)
        except ChildProcessError:
            self.process.wait()
            return 0, 0, 0.0
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self._close_pipes()
        return status, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime

    def _close_pipes(self) -> None:
        for pipe in (self._in, self._out):
            with contextlib.suppress(OSError):
                pipe.close()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            self.process.wait()
        self._close_pipes()

    def close(self, *, timeout: float = 5.0) -> None:
        """Ask the child to finish (the end of its input), and kill it if it does not."""
        with contextlib.suppress(OSError):
            self._in.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill()


class ParsePool:
    """Up to `size` warm parser processes, started on first use and replaced when one dies or retires."""

    def __init__(self, limits: ParseLimits, *, size: int = 2) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ParsePool:
        return cls(ParseLimits.from_settings(settings), size=settings.parse_workers)

    async def prepare(self, data: bytes, name: str) -> Prepared:
        """Parse and chunk a file in the sandbox; raises ParseError or UnsupportedFileType with the reason."""
        return await asyncio.to_thread(self.prepare_blocking, data, name)

    def prepare_blocking(self, data: bytes, name: str) -> Prepared:
        """`prepare`, for callers on a thread of their own."""
        started = time.perf_counter()
        with self._slots:
            child = self._take()
            try:
                frame, retire = child.read(data, name)
            except _Lost as exc:
                log.warning("parser process ended", name=name, reason=str(exc))
                raise ParseLimit(str(exc)) from None
            if retire:
                child.close()
            else:
                self._give_back(child)
        if frame[:1] == b"O":
            return from_json(frame[1:])
        error = json.loads(frame[1:])
        log.info("file not read", name=name, reason=error["message"], seconds=round(time.perf_counter() - started, 3))
        if error["kind"] == "UnsupportedFileType":
            raise UnsupportedFileType(error["message"])
        raise ParseError(error["message"])

    def _take(self) -> _Child:
        with self._lock:
            if self._closed:
                # Not a ParseError: the job is retried later, by this process' successor.
                raise RuntimeError("the parsing sandbox is closed (shutting down)")
            if self._idle:
                return self._idle.pop()
        return _Child(self.limits)

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(child)
                return
        child.close()

    def close(self) -> None:
        """Stop every idle child; a busy one stops when its file is done."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for child in idle:
            child.close()
