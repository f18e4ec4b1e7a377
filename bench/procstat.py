"""CPU seconds and memory of a process tree, read from /proc (Linux only)."""

from __future__ import annotations

import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """The process and its descendants (workers fork from the gateway's main process)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces; every field after its closing paren is plain.
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole tree, in seconds."""
    total = 0
    for member in tree(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmRSS") for p in tree(pid)) / 1024


def peak_rss_mb(pid: int) -> float:
    """Sum of each member's VmHWM: the peak since start or since the last reset."""
    return sum(_status_kb(p, "VmHWM") for p in tree(pid)) / 1024


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (needs Linux >= 4.0 and permission), so peaks are per case."""
    try:
        for member in tree(pid):
            Path(f"/proc/{member}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def settle(pid: int, *, quiet_seconds: float = 0.2, cap_seconds: float = 120.0) -> None:
    """Wait until the tree stops using CPU: a server may still be working off requests that the
    load generator gave up on, and that work must not be billed to the next case."""
    deadline = time.monotonic() + cap_seconds
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_seconds)
        after = cpu_seconds(pid)
        if after - before <= 1 / TICK:
            return
        before = after


def pin(pid: int, cores: set[int]) -> int:
    """Pin every thread of one process to ``cores``; returns how many threads were pinned."""
    pinned = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cores)
            pinned += 1
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return pinned


_tree = tree  # affinity() takes a keyword of the same name


def pin_tree(pid: int, cores: set[int]) -> int:
    return sum(pin(member, cores) for member in tree(pid))


def affinity(pid: int, *, tree: bool = True) -> set[int]:
    """The union of the CPUs every thread of the process (and, with ``tree``, its descendants) may run on."""
    cpus: set[int] = set()
    for member in _tree(pid) if tree else [pid]:
        for task in Path(f"/proc/{member}/task").iterdir():
            try:
                cpus |= os.sched_getaffinity(int(task.name))
            except (OSError, ValueError):
                continue
    return cpus


def busy_seconds(cores: set[int]) -> float:
    """Time the given CPUs spent running anything (user, nice, system, irq, softirq, steal)."""
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
            total += user + nice + system + irq + softirq + steal
    return total / TICK


def loadavg() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
