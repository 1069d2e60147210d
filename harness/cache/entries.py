"""Folder entries of a cache, published atomically and safely under concurrency.

Layout under `root` (e.g. `<cache_dir>/models`):

* `<key>/`: a published entry, with `manifest.json` written last; never deleted while in use,
  only moved aside when its manifest no longer holds;
* `<key>.tmp-<host>-<pid>-<random>/`: one process's work folder. A later run adopts the folder
  of a dead process when it can resume from it, and removes the rest;
* `.damaged/<key>-<utc>/`: entries moved aside, for `drbench cache prune` to delete (and
  folders being deleted, claimed there by a rename first).

Publishing is one `rename`; when another process published the same key first, the later
process keeps the published entry and drops its own copy.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from harness.cache.manifest import MANIFEST, damage, write_manifest
from harness.errors import CacheError

ASIDE = ".damaged"  # where damaged entries are moved, and work folders claimed for deletion
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_WORK = re.compile(r"^(?P<key>[0-9a-f]{64})\.(?:tmp-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[0-9a-f]+|partial)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class Entries:
    """The entries of one artifact kind (`root.name`: models, negatives, ...)."""

    def __init__(self, root: Path, log: Callable[[str], None]):
        self.root, self.log = Path(root), log

    def label(self, key: str) -> str:
        return f"{self.root.name}/{key}"

    def get(self, key: str) -> Path | None:
        """The published entry, or None when absent or damaged (a damaged one is moved aside)."""
        final = self.root / key
        if not final.exists():
            return None
        reason = damage(final, key)
        if reason is not None:
            self.log(f"cache: {self.label(key)} is damaged ({reason}); rebuilding")
            self.move_aside(final)
            return None
        try:  # the manifest's mtime records the last use (for `drbench cache ls` and `prune`)
            os.utime(final / MANIFEST)
        except OSError:
            pass  # a read-only cache is still a cache
        return final

    def workdir(self, key: str, resume: Callable[[Path], bool] = lambda _: False) -> Path:
        """A fresh work folder for this process. The folder of a dead process (or an earlier
        attempt of this one) that `resume` accepts is adopted; other dead ones are removed."""
        mine = self.root / f"{key}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from None
        adopted = False
        for stale in self.stale(key):
            if not adopted and resume(stale):
                try:
                    os.rename(stale, mine)
                    adopted = True
                    continue
                except OSError:
                    continue  # another process adopted it first
            self.discard(stale)
        try:
            mine.mkdir(exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from None
        return mine

    def _unwritable(self, exc: OSError) -> CacheError:
        return CacheError(f"cannot write to {self.root}: {exc.strerror or exc}; check the cache folder or pass "
                          "another --cache-dir")

    def discard(self, folder: Path) -> bool:
        """Delete a work folder or a moved-aside entry: claimed first by a rename into
        `.damaged/`, so a process adopting it at the same moment gets all of it or none.
        False when another process took it first."""
        claimed = self.root / ASIDE / f"{folder.name}.pruning-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            claimed.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, claimed)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise CacheError(f"cannot remove {folder}: {exc.strerror or exc}; check the cache folder's "
                             "permissions or use another --cache-dir") from None
        shutil.rmtree(claimed, ignore_errors=True)  # what stays in .damaged/ goes next time
        return True

    def stale(self, key: str | None = None) -> list[Path]:
        """Work folders (of `key`, or all) that no live process on this host is writing."""
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.iterdir()):
            match = _WORK.match(path.name)
            if not match or not path.is_dir() or (key is not None and match["key"] != key):
                continue
            if match["pid"] is not None:
                if match["host"] != _HOST:
                    continue  # another machine's process: its liveness cannot be told from here
                pid = int(match["pid"])
                if pid != os.getpid() and _alive(pid):
                    continue
            out.append(path)
        return out

    def publish(self, key: str, work: Path, produced_by: dict[str, Any]) -> tuple[Path, bool]:
        """Write the manifest into `work` and rename it into place. Returns the entry and whether
        it is this process's copy (False: another process published the key first)."""
        write_manifest(work, key=key, produced_by=produced_by)
        final = self.root / key
        for _ in range(3):
            try:
                os.rename(work, final)
                return final, True
            except OSError as exc:
                if not final.exists():  # not a race with another publisher: say what went wrong
                    raise CacheError(f"cannot publish {self.label(key)}: {exc.strerror or exc}; check "
                                     f"{self.root}") from None
                # The key was published meanwhile (a non-empty folder cannot be renamed over).
                if damage(final, key) is None:
                    self.discard(work)
                    return final, False
                self.move_aside(final)
        raise CacheError(f"cannot publish {self.label(key)}: {final} keeps reappearing damaged; "
                         f"remove {self.root} and run again")

    def move_aside(self, entry: Path) -> None:
        """Move a damaged entry out of the way (readers holding its files keep them)."""
        aside = self.root / ASIDE / f"{entry.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
        try:
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.rename(entry, aside)
        except FileNotFoundError:
            pass  # another process moved it first
        except OSError as exc:  # e.g. a read-only cache: it cannot be rebuilt there either
            raise CacheError(f"{self.label(entry.name)} is damaged and cannot be moved aside "
                             f"({exc.strerror or exc}); fix the cache folder's permissions or use another "
                             "--cache-dir") from None
