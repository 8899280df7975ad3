"""A small seccomp filter for the bubblewrap sandbox (``bwrap --seccomp FD``).

It refuses (``EPERM``) the system calls a test suite never needs and that widen the kernel surface a
sandboxed program can reach: kernel keyrings, eBPF, perf events, userfaultfd, io_uring, module and
kexec loading, (re)mounting and the new mount API, ``setns``, file handles (``open_by_handle_at``, a
classic container escape), swap, reboot, accounting, quotas. Any other architecture than the native one
(32-bit compat calls, x32 on x86-64) is refused as a whole. Everything else is allowed: this is a
deny list on top of the namespaces, not the main wall.

The program is classic BPF (``struct sock_filter`` array) built here, so no libseccomp is needed.
"""

from __future__ import annotations

import errno
import platform
import struct

# Syscall numbers per machine (x86-64: asm/unistd_64.h; aarch64: the generic table).
_DENIED = {
    "x86_64": {"keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
               "userfaultfd": 323, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
               "finit_module": 313, "delete_module": 176, "mount": 165, "umount2": 166, "pivot_root": 155,
               "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163, "setns": 308,
               "open_by_handle_at": 304, "name_to_handle_at": 303, "io_uring_setup": 425,
               "io_uring_enter": 426, "io_uring_register": 427, "uselib": 134, "quotactl": 179,
               "lookup_dcookie": 212, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
               "fsmount": 432, "fspick": 433, "mount_setattr": 442},
    "aarch64": {"keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
                "userfaultfd": 282, "kexec_load": 104, "kexec_file_load": 294, "init_module": 105,
                "finit_module": 273, "delete_module": 106, "mount": 40, "umount2": 39, "pivot_root": 41,
                "swapon": 224, "swapoff": 225, "reboot": 142, "acct": 89, "setns": 268,
                "open_by_handle_at": 265, "name_to_handle_at": 264, "io_uring_setup": 425,
                "io_uring_enter": 426, "io_uring_register": 427, "quotactl": 60, "lookup_dcookie": 18,
                "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
                "fspick": 433, "mount_setattr": 442},
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def denied_syscalls(machine: str | None = None) -> dict[str, int]:
    """The refused system calls of ``machine`` (default: this one), empty if it is not supported."""
    return dict(_DENIED.get(machine or platform.machine(), {}))


def filter_program(machine: str | None = None) -> bytes | None:
    """The filter as bytes for ``bwrap --seccomp``, or ``None`` on a machine without a table here."""
    machine = machine or platform.machine()
    if machine not in _DENIED:
        return None
    deny = _ERRNO | errno.EPERM
    numbers = sorted(set(_DENIED[machine].values()))
    body = [_insn(_LD_W_ABS, 4),                              # seccomp_data.arch
            _insn(_JEQ_K, _AUDIT_ARCH[machine], jt=1, jf=0),
            _insn(_RET_K, deny),                              # a foreign ABI: refused as a whole
            _insn(_LD_W_ABS, 0)]                              # seccomp_data.nr
    if machine == "x86_64":
        body.append(_insn(_JGE_K, _X32_BIT, jt=len(numbers) + 1, jf=0))  # x32 calls -> deny
    for i, number in enumerate(numbers):
        body.append(_insn(_JEQ_K, number, jt=len(numbers) - i, jf=0))   # -> the deny at the end
    body += [_insn(_RET_K, _ALLOW), _insn(_RET_K, deny)]
    return b"".join(body)
