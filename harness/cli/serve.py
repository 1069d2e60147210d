"""`drbench serve`: the results store in Datasette, read-only, with drbench's descriptions and
canned queries (`leaderboard/datasette.py`). Datasette is the optional extra `drbench[serve]`."""

from __future__ import annotations

import errno
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import typer

from harness.cli.common import DEFAULT_STORE, StoreOpt, err, fail, open_results
from harness.errors import DrbenchError


def _listen_problem(host: str, port: int) -> str | None:
    """Why Datasette could not listen on `host`:`port` (a host that does not resolve, a port in use),
    or None."""
    if not 0 <= port <= 65535:
        return f"--port {port} is not a port; pass one in 0-65535 (0: any free one)"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"--host {host} does not resolve ({exc.args[-1]}); pass an address such as 127.0.0.1 or 0.0.0.0"
    if not port:
        return None
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use; pass --port another (or --port 0 for a free one)"
            return f"cannot listen on {host} port {port}: {exc.strerror or exc}; pass another --host or --port"
    return None


class _Stopped(Exception):
    """SIGTERM reached `drbench serve`: stop Datasette and clean up, as Ctrl-C does."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def serve(store: str | None = StoreOpt,
          port: int = typer.Option(8001, "--port", help="Port to listen on (0: any free one)."),
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
          ) -> None:
    """Browse the store in Datasette (read-only): tables with descriptions, and canned queries."""
    from leaderboard.datasette import metadata

    if importlib.util.find_spec("datasette") is None:
        raise fail("drbench serve needs Datasette: pip install 'drbench[serve]' (or pip install datasette)")
    from harness.store import list_runs

    path = Path(store or DEFAULT_STORE).resolve()
    try:
        db = open_results(str(path))  # a missing store is one line, before anything starts
        empty = not list_runs(db)
        db.close()
    except DrbenchError as exc:
        raise fail(exc) from None
    if empty:
        raise fail(f"{path} holds no runs yet; run `drbench run RECIPE` first")
    if problem := _listen_problem(host, port):
        raise fail(problem)
    with tempfile.TemporaryDirectory(prefix="drbench-serve-") as folder:
        meta = Path(folder) / "metadata.json"
        meta.write_text(json.dumps(metadata(path.stem)), encoding="utf-8")
        # Datasette opens a database that is not immutable read-only (mode=ro) and sees new runs.
        command = [sys.executable, "-m", "datasette", "serve", str(path), "--metadata", str(meta),
                   "--host", host, "--port", str(port), "--setting", "sql_time_limit_ms", "10000"]
        err.print(f"serving {path} read-only with Datasette on http://{host}:{port or '<free port>'}/ "
                  "(Ctrl-C stops it)", highlight=False, soft_wrap=True)
        code = _run_until_stopped(command)
    if code not in (0, -2, -15, 130, 143):
        raise fail(f"Datasette stopped with exit code {code}", code if code > 0 else 1)


def _run_until_stopped(command: list[str]) -> int:
    """Run Datasette until it exits, Ctrl-C or SIGTERM; never leave it running behind us.

    Ctrl-C reaches Datasette too (same process group); SIGTERM to our pid reaches only us, so
    the handler passes it on. Either way the caller's temporary folder is removed after it exits.
    """
    main = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous = signal.signal(signal.SIGTERM, _stop) if main else None
    child: subprocess.Popen[bytes] | None = None
    try:
        child = subprocess.Popen(command)
        return child.wait()
    except (KeyboardInterrupt, _Stopped):
        return 0
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
