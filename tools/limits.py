"""Resource limits of one sandboxed command (``resource.setrlimit`` in the child, plus a process limit and
a memory limit across processes that the sandbox enforces through cgroups: see ``Sandbox.process_limit``
and ``Sandbox.memory_limit``)."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Hard limits of one command: wall seconds, address space per process, memory of all its processes
    together (and of what they put in the private /tmp and /dev/shm: a memory cgroup, where one exists),
    written file size, processes (and threads) alive at once, output characters kept, size of the private
    /tmp and /dev/shm (bwrap)."""

    time_s: float = 30.0
    memory_mb: int = 1024
    total_memory_mb: int | None = 2048
    file_size_mb: int = 64
    max_processes: int | None = 256
    max_output_chars: int = 10_000
    tmpfs_mb: int = 512

    def preexec(self):
        """A ``preexec_fn`` that applies the rlimits in the child (after fork, before exec).

        ``max_processes`` is not set here: ``RLIMIT_NPROC`` counts every process of the uid on the host
        (and is ignored for root); the sandbox applies it where it is per-sandbox (a pids cgroup, or
        inside bwrap's user namespace)."""
        memory = self.memory_mb * 1024 * 1024
        fsize = self.file_size_mb * 1024 * 1024
        cpu = max(1, int(self.time_s) + 1)

        def apply() -> None:
            os.setsid()  # own process group: the whole tree is killed on timeout
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        return apply
