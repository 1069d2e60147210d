"""Provenance stored with every result: git commit, package versions, platform, time, hashes.

Nothing here imports the packages it reports on: versions come from installed metadata,
so recording provenance never pays for importing torch.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

DEFAULT_PACKAGES = ("drbench", "torch", "transformers", "faiss-cpu", "ir-datasets", "ranx",
                    "bm25s", "sqlite-utils", "numpy")
_GIT_TIMEOUT_S = 10


def git_commit(repo_dir: str | Path) -> tuple[str | None, bool]:
    """(HEAD commit, dirty) of the git work tree holding `repo_dir`; (None, False) outside one.

    Dirty means tracked changes or untracked files git does not ignore: an untracked module
    can change results too. Never raises: provenance must not stop a run.
    """
    commit = _git(repo_dir, "rev-parse", "HEAD")
    if not commit:
        return None, False
    status = _git(repo_dir, "status", "--porcelain")
    # An unreadable status is reported dirty: claiming a clean tree would be the worse lie.
    return commit, status is None or status != ""


def _git(repo_dir: str | Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo_dir), *args], capture_output=True,
                              text=True, timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None  # no git binary, missing directory, hung filesystem
    return done.stdout.strip() if done.returncode == 0 else None


def package_versions(names: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution name (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, str]:
    """The interpreter and platform a run used: {"python": "3.11.7", "platform": "Linux-..."}."""
    return {"python": platform.python_version(), "platform": platform.platform()}


def utc_now() -> str:
    """Now as an ISO-8601 UTC string to the second, e.g. ``2024-05-01T12:00:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_text(text: str) -> str:
    """Hex SHA-256 of `text` encoded as UTF-8 (recipe hashes, run keys)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
