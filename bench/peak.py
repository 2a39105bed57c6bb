"""Wall time and peak resident memory of one command, as the command itself used it.

Why not ``wait4``'s ``ru_maxrss``: Linux carries the high-water mark of the forking process across
``exec`` into the child's, so a bench that holds 1.5 M generated points reported its own 1.4 GB as
the peak of a ``gdi publish`` that used 550 MB (``/usr/bin/time -v``). The child's own ``VmHWM`` (in
/proc) starts afresh at exec; it is read while the command runs, and its last reading is the peak.
"""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path


def _hwm_kb(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
    return int(line.split()[1]) if line else None


def run(args: list[str], env: dict, *, poll_s: float = 0.02) -> tuple[float, float, int, str]:
    """(seconds, peak resident MB, exit code, output) of args."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak_kb = 0
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak_kb = max(peak_kb, _hwm_kb(proc.pid) or 0)
        time.sleep(poll_s)
    took = time.perf_counter() - started
    reader.join()
    return took, peak_kb / 1024, proc.returncode, b"".join(chunks).decode(errors="replace")
