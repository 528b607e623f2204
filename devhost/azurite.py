"""Azurite (the storage emulator from node_modules) as a managed child process."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from devhost.settings import DEFAULT_AZURITE_PORTS, azurite_connection_string

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
HOST = "127.0.0.1"
_SERVICES = ("Blob", "Queue", "Table")
_LISTENING = re.compile(
    r"Azurite (Blob|Queue|Table) service is successfully listening at \S+:(\d+)"
)


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``port``; TIME_WAIT leftovers don't count, as for Node."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class AzuriteError(RuntimeError):
    """Azurite could not be started (missing install, port clash, crash, timeout)."""


class Azurite:
    """One Azurite process. Ports of 0 are chosen by Azurite and kept for later restarts.

    ``stop()`` then ``start()`` brings it back on the same ports (with ``in_memory`` the data
    is gone, with ``location`` it survives), which is how tests simulate a storage outage.
    """

    def __init__(
        self,
        in_memory: bool = True,
        location: Path | None = None,
        ports: tuple[int, int, int] | None = None,
        startup_timeout: float = 30.0,
        silent: bool = True,
    ) -> None:
        if location is not None:
            in_memory = False
        elif not in_memory:
            raise ValueError("persistent Azurite needs a location directory")
        self.in_memory = in_memory
        self.location = Path(location) if location is not None else None
        self.ports: tuple[int, int, int] = ports or (0, 0, 0)
        self.startup_timeout = startup_timeout
        self.silent = silent
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def blob_port(self) -> int:
        return self.ports[0]

    @property
    def queue_port(self) -> int:
        return self.ports[1]

    @property
    def table_port(self) -> int:
        return self.ports[2]

    @property
    def connection_string(self) -> str:
        if 0 in self.ports:
            raise AzuriteError("Azurite has not been started yet, its ports are unknown")
        return azurite_connection_string(*self.ports, host=HOST)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self) -> list[str]:
        if not AZURITE_BIN.exists():
            raise AzuriteError(f"{AZURITE_BIN} not found; run 'npm ci' in {REPO_ROOT}")
        command = [str(AZURITE_BIN), "--disableTelemetry", "--skipApiVersionCheck", "--loose"]
        if self.silent:
            command.append("--silent")
        for service, port in zip(_SERVICES, self.ports, strict=True):
            key = service.lower()
            command += [f"--{key}Host", HOST, f"--{key}Port", str(port)]
        if self.in_memory:
            command.append("--inMemoryPersistence")
        else:
            assert self.location is not None
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        return command

    def start(self) -> Self:
        """Launch Azurite and block until all three services accept connections."""
        if self.running:
            return self
        busy = [p for p in self.ports if p and not port_is_free(p)]
        if busy:
            raise AzuriteError(f"cannot start Azurite: port(s) {busy} already in use")
        command = self._command()
        fd, log_name = tempfile.mkstemp(prefix="azurite-", suffix=".log")
        self._log_path = Path(log_name)
        # A file rather than a pipe: nobody drains Azurite's output, and a full pipe would hang it.
        with os.fdopen(fd, "wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.location or REPO_ROOT),
                start_new_session=True,
            )
        _running.add(self)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AzuriteError(
                    f"Azurite exited with code {self._process.returncode}:\n{self.log_tail()}"
                )
            # Azurite's own "listening" lines prove it is *this* process that holds the ports.
            found = dict(_LISTENING.findall(self.log_tail(200)))
            if all(s in found for s in _SERVICES):
                ports = [int(found[s]) for s in _SERVICES]
                if all(_accepts_connections(p) for p in ports):
                    self.ports = (ports[0], ports[1], ports[2])
                    return
            time.sleep(0.05)
        raise AzuriteError(
            f"Azurite did not accept connections on {self.ports} within "
            f"{self.startup_timeout:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of Azurite's combined stdout/stderr, for error messages."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process group, killing it if it has not exited after ``timeout``."""
        process, self._process = self._process, None
        _running.discard(self)
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def freeze(self) -> None:
        """Suspend the process (SIGSTOP): connections are accepted, nothing is answered -
        the hardest storage outage for a client, which waits instead of failing."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a frozen Azurite (SIGCONT)."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGCONT)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Azurite {state} ports={self.ports} in_memory={self.in_memory}>"


# Instances still running at interpreter exit (a test run interrupted before its teardown)
# are stopped then, so they don't outlive us holding ports and memory.
_running: set[Azurite] = set()


@atexit.register
def _stop_leftovers() -> None:
    for instance in list(_running):
        instance.stop()


def start_azurite(
    in_memory: bool = True,
    location: Path | None = None,
    ports: tuple[int, int, int] | None = None,
) -> Azurite:
    """Start Azurite and return it running; a ``location`` implies persistent storage.

    Without ``ports`` Azurite picks free ones (no race with other processes).
    """
    if location is not None:
        in_memory = False
    return Azurite(in_memory=in_memory, location=location, ports=ports).start()


def preferred_ports() -> tuple[int, int, int] | None:
    """The standard 10000-10002 when all are free, else None (meaning: let Azurite choose)."""
    return DEFAULT_AZURITE_PORTS if all(port_is_free(p) for p in DEFAULT_AZURITE_PORTS) else None
