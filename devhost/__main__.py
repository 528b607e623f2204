"""``python -m devhost``: serve the Function App locally, like ``func start``."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from devhost.azurite import Azurite, AzuriteError, preferred_ports
from devhost.server import DEFAULT_PORT, LocalHost, load_app
from devhost.settings import HostConfig, load_local_settings

log = logging.getLogger("devhost")

# Settings the app and the host read for storage; pointed at the Azurite we start.
STORAGE_SETTINGS = ("AzureWebJobsStorage", "STORAGE_CONNECTION_STRING")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app", default="function_app", help="module[:attr] or file.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", DEFAULT_PORT)),
        help="default: $PORT or 7071",
    )
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"))
    parser.add_argument("--host-json", type=Path, default=Path("host.json"))
    parser.add_argument(
        "--azurite",
        type=Path,
        metavar="DIR",
        help="start Azurite persisting into DIR and point the storage settings at it",
    )
    parser.add_argument("--no-timers", action="store_true", help="only run timers via admin API")
    parser.add_argument(
        "--role",
        choices=("all", "http", "workers", "single"),
        default="all",
        help="all (default): HTTP here, queue and timer functions in a supervised worker"
        " process (as separate instances in Azure, so training never slows requests);"
        " http / workers: one of the two; single: everything in this one process",
    )
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The storage SDK logs every poll request at INFO; that would drown the request log.
        logging.getLogger("azure").setLevel(logging.WARNING)
    # Like Core Tools, the app's own directory must be importable.
    sys.path.insert(0, os.getcwd())
    load_local_settings(args.settings)
    config = HostConfig.load(args.host_json)

    azurite: Azurite | None = None
    if args.azurite is not None:
        try:
            azurite = Azurite(in_memory=False, location=args.azurite, ports=preferred_ports())
            azurite.start()
        except AzuriteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        # Must happen before the app is imported: its settings are read at import time.
        for name in STORAGE_SETTINGS:
            os.environ[name] = azurite.connection_string
        print(f"Azurite: blob/queue/table on ports {azurite.ports}, data in {args.azurite}")

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    host: LocalHost | None = None
    workers: WorkerProcess | None = None
    serves_http = args.role != "workers"
    runs_work = args.role in ("workers", "single")
    try:
        host = LocalHost(
            load_app(args.app),
            host=args.host,
            port=args.port,
            config=config,
            timers=runs_work and not args.no_timers,
            queues=runs_work,
            http=serves_http,
        )
        host.start()
        if args.role == "all":
            workers = WorkerProcess(worker_argv(args))
            workers.start()
        if serves_http:
            print(host.describe())
            print(f"\nListening on {host.url} (Ctrl-C to stop)", flush=True)
        else:
            print("Queue and timer functions running (Ctrl-C to stop)", flush=True)
        # Wake up regularly so signal handlers run promptly on every platform.
        while not stopping.wait(0.5):
            if workers is not None:
                workers.keep_alive()
        print("Stopping...", flush=True)
    except (ImportError, TypeError, ValueError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        if workers is not None:
            workers.stop()
        if host is not None:
            host.stop()
        if azurite is not None:
            # The app's exit handlers (function_app registers services.close: pending
            # counters and prediction-log entries) need storage; in Azure storage outlives
            # the worker, here Azurite is our child: run them while it still answers.
            atexit._run_exitfuncs()
            azurite.stop()
    return 0


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The worker process: same app and settings; storage comes through the environment."""
    argv = [sys.executable, "-m", "devhost", "--role", "workers", "--app", args.app]
    argv += ["--settings", str(args.settings), "--host-json", str(args.host_json)]
    if args.no_timers:
        argv.append("--no-timers")
    if args.verbose:
        argv.append("--verbose")
    return argv


class WorkerProcess:
    """The queue/timer worker child; restarted when it dies, as the platform would."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)  # noqa: S603

    def keep_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            log.warning("worker process exited (%s); restarting it", self.process.returncode)
            self.start()

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


if __name__ == "__main__":
    sys.exit(main())
