"""CPU time per Flink task thread of a running local job, from /proc.

Flink names each task thread after its operator chain and subtask ("trainer (1/1)#0"), and in
thread mode the Python operators run on those threads, so a thread's CPU time is its chain's
whole cost, Python included. Linux keeps the first 15 characters of a thread's name
(``/proc/PID/task/TID/comm``), which still tell this job's named chains apart ("trainer (1/1)#0",
"predictor (1/2)", "user-features -"). Threads end with the job, so the bench polls while the job
runs and keeps each thread's last figure. (``jcmd PID Thread.print`` has the whole names and CPU
times, but crashed the JVM in ``pthread_getcpuclockid`` when polled while threads started.)

>>> threads = {1: ThreadCpu("trainer (1/1)#0", 1.5), 2: ThreadCpu("user-features -", 3.8),
...            3: ThreadCpu("user-features -", 2.0), 4: ThreadCpu("C1 CompilerThre", 1.2)}
>>> [(g.name, g.threads, round(g.cpu_s, 1)) for g in by_name(threads)]
[('user-features -', 2, 5.8), ('trainer (1/1)#0', 1, 1.5), ('C1 CompilerThre', 1, 1.2)]
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadCpu:
    name: str  # the first 15 characters
    cpu_s: float


@dataclass(frozen=True)
class NamedCpu:
    name: str
    threads: int  # a chain's subtasks: its parallelism
    cpu_s: float


def by_name(threads: dict[int, ThreadCpu]) -> list[NamedCpu]:
    """Threads summed per name, the costliest first."""
    groups: dict[str, list[float]] = {}
    for thread in threads.values():
        groups.setdefault(thread.name, []).append(thread.cpu_s)
    return sorted((NamedCpu(name, len(cpu), sum(cpu)) for name, cpu in groups.items()), key=lambda g: -g.cpu_s)


class ThreadCpuPoller:
    """Polls a process: ``threads`` keeps every thread's last CPU time, ``cpu_s`` the whole
    process's (all threads, the ended ones included)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.threads: dict[int, ThreadCpu] = {}
        self.cpu_s = 0.0

    def poll(self) -> None:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:  # the process has exited: the last poll's figures stand
            return
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/comm") as f:
                    name = f.read().rstrip("\n")
            except OSError:
                continue
            cpu_s = _cpu_seconds(f"/proc/{self.pid}/task/{tid}/stat")
            if cpu_s is not None:
                self.threads[int(tid)] = ThreadCpu(name, cpu_s)
        self.cpu_s = _cpu_seconds(f"/proc/{self.pid}/stat") or self.cpu_s


def _cpu_seconds(stat_path: str) -> float | None:
    """User and system CPU of a process or thread, None once it has ended."""
    try:
        with open(stat_path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
