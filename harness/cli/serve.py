"""`drbench serve`: the results store in Datasette, read-only, with drbench's descriptions and
canned queries (`leaderboard/datasette.py`). Datasette is the optional extra `drbench[serve]`."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import typer

from harness.cli.common import DEFAULT_STORE, StoreOpt, err, fail, open_results
from harness.errors import DrbenchError


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


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
    if port and not _port_free(host, port):
        raise fail(f"port {port} on {host} is in use; pass --port another (or --port 0 for a free one)")
    with tempfile.TemporaryDirectory(prefix="drbench-serve-") as folder:
        meta = Path(folder) / "metadata.json"
        meta.write_text(json.dumps(metadata(path.stem)), encoding="utf-8")
        # Datasette opens a database that is not immutable read-only (mode=ro) and sees new runs.
        command = [sys.executable, "-m", "datasette", "serve", str(path), "--metadata", str(meta),
                   "--host", host, "--port", str(port), "--setting", "sql_time_limit_ms", "10000"]
        err.print(f"serving {path} read-only with Datasette on http://{host}:{port or '<free port>'}/ "
                  "(Ctrl-C stops it)", highlight=False, soft_wrap=True)
        try:
            done = subprocess.run(command, check=False)
        except KeyboardInterrupt:
            return
    if done.returncode not in (0, -2, 130):
        raise fail(f"Datasette stopped with exit code {done.returncode}", done.returncode)
