"""Child processes of the local stack: spawned to die with their launcher, awaited, stopped
(apart because every service and the stack itself start theirs this way).

Every child gets ``PR_SET_PDEATHSIG = SIGKILL``, so nothing outlives the launcher, even when
the launcher itself is SIGKILLed. The kernel ties that signal to the *thread* that forked the
child: start services from a thread that lives as long as they should (the main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1


READY_TIMEOUT = 30.0


class StackError(RuntimeError):
    """A service of the local stack could not be started."""


@dataclass
class Service:
    """A started child process and the URL it answers on."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the process to stop, wait, and kill it if it does not."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait(5)
        # PostgreSQL backends leave on their own once the postmaster is gone
        _wait_gone(_children_of(self.process.pid), 5.0)


def _preexec(uid: int | None = None, gid: int | None = None) -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # after the uid change: a credential change clears the parent-death signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that dies with the launcher; output goes to ``log_path``."""
    uid = gid = None
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid = entry.pw_uid, entry.pw_gid
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {name} starting: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(  # noqa: S603 - argv is built here, not from input
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            # own process group: the terminal's Ctrl-C reaches the launcher only, which
            # then stops the children in order
            start_new_session=True,
            preexec_fn=_preexec(uid, gid),  # noqa: PLW1509 - prctl must run in the child
        )


def log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_port_free(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_until(
    check: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes] | None,
    log_path: Path | None,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Poll ``check`` until true; fail with the child's log tail on exit or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet
            pass
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{what} exited with code {process.returncode} before it was ready; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} not ready after {timeout:.0f}s; log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.1)


def start_ready(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    port: int,
    ready: Callable[[], bool],
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    tries: int = 3,
) -> subprocess.Popen[bytes]:
    """:func:`spawn` ``argv`` once ``port`` is free and wait until ``ready``; a start that
    fails (a port or shared-memory block still held by a dying predecessor) is tried again,
    ``tries`` times in all."""
    for attempt in range(tries):
        wait_port_free(port, 5.0)
        process = spawn(name, argv, log_path, env=env, user=user)
        try:
            wait_until(ready, name, process, log_path)
            return process
        except StackError:
            stop_quietly(process)
            if attempt == tries - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def kill_leftovers(marker: str) -> None:
    """Kill processes of a launcher that died without cleaning up (their cmdline has marker)."""
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and marker in " ".join(proc.info["cmdline"] or []):
                leftovers.append(proc)
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_gone(leftovers, 5.0)


def traversable_by(path: Path, user: str) -> None:
    """Let ``user`` reach ``path``: add o+x (search, not listing) to ancestors that lack it."""
    entry = pwd.getpwnam(user)
    for ancestor in reversed(path.resolve().parents):
        st = ancestor.stat()
        if st.st_uid == entry.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        ancestor.chmod(st.st_mode | stat.S_IXOTH)


def stop_quietly(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(5)
