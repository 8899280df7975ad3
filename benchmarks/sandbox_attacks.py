"""Attacks on the sandbox (issue 14, "The sandbox leaks"), each reported as BLOCKED or LEAKS, plus the
start-up cost of a sandboxed command per isolation mode.

    python -m seasoned.benchmarks.sandbox_attacks                     # this tree, auto isolation
    python -m seasoned.benchmarks.sandbox_attacks --isolation namespaces
    python -m seasoned.benchmarks.sandbox_attacks --tools-from /tmp/old/tools   # another copy of tools/
    python -m seasoned.benchmarks.sandbox_attacks --startup 50        # mean ms of `true`, per mode

Every attack cleans up after itself (probe files removed, surviving processes killed after counting).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

from seasoned.settings import settings

REPO = Path(__file__).resolve().parent.parent
INSTANCES = REPO / "envs" / "fixtures" / "swe" / "instances.jsonl"


def load_tools(directory: str | None):
    """``seasoned.tools``, or a copy of the tools package from another directory (an older version)."""
    if directory is None:
        from seasoned import tools

        return tools
    spec = importlib.util.spec_from_file_location("seasoned_tools_under_test", Path(directory) / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def procs_with(marker: str) -> list[int]:
    """The host's processes whose command line contains ``marker`` (what escaped a sandbox leaves)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path("/proc", entry, "cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _secret_file(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".sandbox-probe-{uuid.uuid4().hex[:8]}"
    path.write_text("TOP-SECRET-PROBE")
    return path


def attacks(tools, isolation: str = "auto") -> list[tuple[str, bool, str]]:
    """``(attack, blocked, detail)`` for each attack. The workspace is made where the product makes
    short-lived ones (the capped scratch area, when this version of tools/ has one)."""
    scratch = getattr(getattr(tools, "diskcap", None), "scratch_root", lambda: None)()
    base = Path(tempfile.mkdtemp(prefix="seasoned-attacks-", dir=scratch)).resolve()
    ws = base / "ws"
    ws.mkdir()
    box = tools.Sandbox(ws, tools.Limits(time_s=20, memory_mb=512), isolation=isolation)
    rows: list[tuple[str, bool, str]] = []

    def read_attack(name: str, path: Path, needle: str) -> None:
        done = box.run(["cat", str(path)])
        rows.append((name, needle not in done.stdout, f"exit {done.exit_code}"))

    home = settings().home
    cleanup = [_secret_file(home), _secret_file(Path.home())]
    try:
        read_attack(f"read a file in SEASONED_HOME ({home})", cleanup[0], "TOP-SECRET")
        read_attack(f"read a file in root's home ({Path.home()})", cleanup[1], "TOP-SECRET")
        read_attack("read the SWE instances (reference patch)", INSTANCES, '"patch"')
        dev = Path(f"/dev/seasoned-probe-{uuid.uuid4().hex[:8]}")
        box.run(f"touch {dev}")
        rows.append(("create a file in the host's /dev", not dev.exists(), ""))
        cleanup.append(dev)
        outside = base / "outside.txt"
        box.run(f"echo x > {outside}")
        rows.append(("write outside the workspace (shell)", not outside.exists(), ""))
        rows.append(_unix_socket(box, base))
        rows.append(_tcp(box))
        rows.append(_fork_bomb(box))
        rows.append(_survivors(box))
        rows.append(_symlink_search(tools, base, ws))
        rows += _issue22(tools, box, base)
    finally:
        for path in cleanup:
            try:
                path.unlink()
            except OSError:
                pass
        box.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    return rows


def _unix_socket(box, base: Path) -> tuple[str, bool, str]:
    path = base / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    try:
        code = (f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})\n"
                f"print('CONNECTED')")
        done = box.run_python(code)
    finally:
        server.close()
    return ("connect to a host unix socket", "CONNECTED" not in done.stdout, done.stderr.strip().splitlines()[-1][-60:] if done.stderr.strip() else "")


def _tcp(box) -> tuple[str, bool, str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        port = server.getsockname()[1]
        done = box.run_python(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), 3)\nprint('CONNECTED')")
    finally:
        server.close()
    return ("connect to 127.0.0.1 (host port)", "CONNECTED" not in done.stdout, done.stderr.strip().splitlines()[-1][-60:] if done.stderr.strip() else "")


def _fork_bomb(box) -> tuple[str, bool, str]:
    marker = f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10 ** 6}"
    code = ("import os, sys\nn = 0\nfor i in range(1000):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n"
            f"    if pid == 0:\n        os.execv('/bin/sleep', ['sleep', '{marker}'])\n    n += 1\nprint(n)")
    done = box.run_python(code, timeout=60)
    started = int(done.stdout.strip() or 0) if done.stdout.strip().isdigit() else -1
    for pid in procs_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return ("1000 background processes", started < 1000, f"{started} of 1000 started")


def _survivors(box) -> tuple[str, bool, str]:
    marker = f"{600 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10 ** 6}"
    box.run(f"setsid sleep {marker} >/dev/null 2>&1 < /dev/null & "
            f"(sh -c 'sleep {marker} >/dev/null 2>&1 < /dev/null &' &) ; echo started")
    alive = procs_with(marker)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return ("setsid / double-fork survive run()", not alive, f"{len(alive)} alive after run() returned")


def _symlink_search(tools, base: Path, ws: Path) -> tuple[str, bool, str]:
    secret = base / "secret-dir"
    secret.mkdir()
    (secret / "key.txt").write_text("TOP-SECRET-PROBE\n")
    (ws / "escape").symlink_to(secret)
    (ws / "escape.txt").symlink_to(secret / "key.txt")
    found = tools.FileTools(ws).search("SECRET.PROBE")
    return ("FileTools.search follows a symlink out", "TOP-SECRET-PROBE" not in found, found.splitlines()[0][:60])


def _issue22(tools, box, base: Path) -> list[tuple[str, bool, str]]:
    """Issue 22's sandbox rows: host sysctls, host root, a planted snippet link, memory and disk."""
    rows = []
    probe = ("import os\nfor p in ('/proc/sys/kernel/core_pattern', '/proc/sys/fs/suid_dumpable', "
             "'/proc/sys/kernel/randomize_va_space', '/proc/sys/vm/overcommit_memory'):\n    try:\n"
             "        os.close(os.open(p, os.O_WRONLY)); print('OPENED', p)\n    except OSError:\n        pass\n")
    opened = box.run_python(probe).stdout.count("OPENED")
    rows.append(("open 4 host sysctls for writing", opened == 0, f"{opened}/4 opened"))
    planted = box.root / "owned-by-root.txt"
    planted.write_text("root's\n")
    box.run("echo changed >> owned-by-root.txt")
    rows.append(("write a root-owned file in the workspace", planted.read_text() == "root's\n",
                 "the sandbox is host root" if planted.read_text() != "root's\n" else "not host root"))
    host_file = base / "host-config.txt"
    host_file.write_text("HOST\n")
    box.run(f"mkdir -p .tmp && ln -sfn {host_file} .tmp/_snippet.py")
    try:
        box.run_python("print('snippet')")
    except OSError as exc:
        rows.append(("run_python after a planted .tmp/_snippet.py link", False, str(exc)[:60]))
    else:
        rows.append(("run_python after a planted .tmp/_snippet.py link", host_file.read_text() == "HOST\n", ""))
    try:
        limits = tools.Limits(time_s=60, memory_mb=1024, total_memory_mb=600)
    except TypeError:
        limits = tools.Limits(time_s=60, memory_mb=1024)
    script = box.root / "hold.py"
    script.write_text("import multiprocessing as m, time\ndef hold():\n    b = bytearray(200 << 20)\n"
                      "    b[::4096] = b'x' * len(b[::4096])\n    time.sleep(2)\n"
                      "ps = [m.Process(target=hold) for _ in range(8)]\n[p.start() for p in ps]\n"
                      "[p.join() for p in ps]\nprint(sum(p.exitcode == 0 for p in ps))")
    held = box.run([sys.executable, str(script)], limits=limits)
    whole = held.stdout.strip().splitlines()[-1] if held.stdout.strip() else "?"
    rows.append(("8 processes x 200 MB (cap 600 MB across)", whole != "8", f"{whole}/8 held their 200 MB"))
    wrote = box.run("for i in $(seq 1 20); do dd if=/dev/zero of=fill$i bs=1M count=60 2>/dev/null; done; "
                    "du -sm . | cut -f1; rm -f fill*", timeout=120)
    size = wrote.stdout.split()[-1] if wrote.stdout.split() else "?"
    rows.append(("write 1.2 GB into the workspace", size != "?" and int(size) < 1200, f"{size} MB written"))
    return rows


def startup(tools, runs: int) -> dict[str, float]:
    """Median wall milliseconds of ``true`` (and of ``python -c pass``) per isolation mode, the modes
    interleaved so that load from other processes hits them alike; ``+cgroup`` rows add the pids cgroup."""
    ws = Path(tempfile.mkdtemp(prefix="seasoned-startup-")).resolve()
    samples: dict[str, list[float]] = {}
    try:
        modes = ["guard"] + [m for m in ("namespaces", "bwrap") if _mode_ok(tools, ws, m)]
        boxes = {mode: tools.Sandbox(ws, isolation=mode) for mode in modes}
        no_cgroup = tools.Limits(max_processes=None)
        for i in range(runs + 1):
            for mode, box in boxes.items():
                for name, argv, limits in ((mode, ["true"], no_cgroup), (f"{mode} +cgroup", ["true"], None),
                                           (f"{mode} python", [sys.executable, "-c", "pass"], None)):
                    started = time.perf_counter()
                    box.run(argv, limits=limits)
                    if i:  # the first round warms caches and probes
                        samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        for box in boxes.values():
            box.cleanup()
    finally:
        shutil.rmtree(ws, ignore_errors=True)
    return {name: sorted(values)[len(values) // 2] for name, values in samples.items()}


def _mode_ok(tools, ws: Path, mode: str) -> bool:
    try:
        tools.Sandbox(ws, isolation=mode)
        return True
    except tools.ToolError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", default="auto")
    parser.add_argument("--tools-from", default=None, help="a directory holding another copy of tools/")
    parser.add_argument("--startup", type=int, default=0, help="also time N runs of `true` per mode")
    args = parser.parse_args(argv)
    tools = load_tools(args.tools_from)
    with tempfile.TemporaryDirectory(prefix="seasoned-attacks-") as ws:
        box = tools.Sandbox(ws, isolation=args.isolation)
        print(f"isolation: {box.isolation}" + (f" · process limit: {box.process_limit}"
                                               if hasattr(box, "process_limit") else ""))
    for name, blocked, detail in attacks(tools, args.isolation):
        print(f"{'BLOCKED' if blocked else 'LEAKS  '}  {name:<48} {detail}")
    if args.startup:
        for mode, ms in startup(tools, args.startup).items():
            print(f"startup (median) {mode:<20} {ms:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
