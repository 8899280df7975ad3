"""Resource limits applied to a sandboxed child process (``resource.setrlimit``)."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Hard limits of one command: wall seconds, address space, written file size, output kept."""

    time_s: float = 30.0
    memory_mb: int = 1024
    file_size_mb: int = 64
    max_processes: int | None = None
    max_output_chars: int = 10_000

    def preexec(self):
        """A ``preexec_fn`` that applies the limits in the child (after fork, before exec)."""
        memory = self.memory_mb * 1024 * 1024
        fsize = self.file_size_mb * 1024 * 1024
        cpu = max(1, int(self.time_s) + 1)
        nproc = self.max_processes

        def apply() -> None:
            os.setsid()  # own process group: the whole tree is killed on timeout
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if nproc is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

        return apply
