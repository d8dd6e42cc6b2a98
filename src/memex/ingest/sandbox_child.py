"""The parsing sandbox's child process (`python -m memex.ingest.sandbox_child`), started by `sandbox.ParsePool`.

It imports the parsers and loads the tokenizer once, then reads files one at a time, each under a fresh CPU
time limit and the process' address-space limit; the parent kills it when a file takes too long. After a
file that left it much larger, or after many files, it retires (says so and exits) so a fresh one takes over.

Frames on stdin and stdout: an 8-byte big-endian length, then the bytes. Parent → child: a JSON config once,
then per file a JSON header and the file's bytes. Child → parent: b"R" + {"rss"} once ready, then per file a kind
(b"O" + the Prepared as JSON, or b"E" + {"kind", "message"} as JSON) and a byte, b"1" when it retires.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import struct
from typing import IO

from memex.errors import MemexError, UnsupportedFileType
from memex.ingest.chunking import Chunker
from memex.ingest.prepare import prepare, to_json

_LENGTH = struct.Struct(">Q")
# A child that runs out of memory in Python code (MemoryError) exits with this status.
EXIT_MEMORY = 86


def write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(_LENGTH.pack(len(payload)))
    out.write(payload)
    out.flush()


def read_frame(inp: IO[bytes]) -> bytes | None:
    """The next frame, or None at end of input."""
    head = _read_exactly(inp, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    return _read_exactly(inp, length)


def _read_exactly(inp: IO[bytes], size: int) -> bytes | None:
    parts: list[bytes] = []
    while size > 0:
        part = inp.read(min(size, 1 << 24))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def error_frame(message: str, kind: str = "ParseError") -> bytes:
    return b"E" + json.dumps({"kind": kind, "message": message}).encode()


def _memory_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> None:
    """Read files for the parent until it closes our stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a parser killed at a limit leaves no core file
    # Our stdout carries frames: anything a library prints goes to stderr instead.
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    raw = read_frame(inp)
    if raw is None:
        return
    config = json.loads(raw)
    from memex.embeddings.model_files import tokenizer

    chunker = Chunker(tokenizer(), max_tokens=config["chunk_tokens"], overlap_tokens=config["overlap_tokens"])
    chunker.count(["warm up the tokenizer"])
    memory = config["memory_mb"] * 1024 * 1024
    base_vm = _memory_kib("VmSize") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (base_vm + memory, base_vm + memory))
    # The parent judges a crash by how far the child's peak memory rose above this.
    write_frame(out, b"R" + json.dumps({"rss": _memory_kib("VmRSS") * 1024}).encode())
    files = 0
    while (header := read_frame(inp)) is not None:
        data = read_frame(inp)
        if data is None:
            return
        _limit_cpu(config["cpu_seconds"])
        try:
            frame = _read_file(data, json.loads(header)["name"], chunker, max_chars=config["max_chars"])
        except MemoryError:
            os._exit(EXIT_MEMORY)
        files += 1
        # Python keeps the memory it once held: a child that grew a lot would meet the limit sooner next time.
        retire = files >= config["max_files"] or _memory_kib("VmSize") * 1024 - base_vm > memory // 4
        write_frame(out, frame[:1] + (b"1" if retire else b"0") + frame[1:])
        if retire:
            return


def _limit_cpu(seconds: int) -> None:
    """Allow `seconds` more CPU time from now: past it the kernel sends SIGXCPU, which ends the process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _read_file(data: bytes, name: str, chunker: Chunker, *, max_chars: int) -> bytes:
    try:
        return b"O" + to_json(prepare(data, name, chunker, max_chars=max_chars))
    except UnsupportedFileType as exc:
        return error_frame(exc.message, "UnsupportedFileType")
    except MemexError as exc:
        return error_frame(exc.message)
    except MemoryError:
        raise
    except Exception as exc:  # the parent must hear of it as a failed file, never as a dead process
        return error_frame(f"could not read the file: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
