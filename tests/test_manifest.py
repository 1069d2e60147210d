"""Cache manifests (`harness.cache.manifest`): what makes an entry untrustworthy, in the words the
log and `drbench cache verify` use, and what does not (extra files, a matching key)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cache.entries import Entries
from harness.cache.manifest import (MANIFEST, damage, file_damage, file_record, read_manifest, sha256_file,
                                    write_file_manifest, write_manifest)

KEY = "e" * 64


def entry(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"0123456789")
    (folder / "sub").mkdir()
    (folder / "sub" / "config.json").write_text("{}")
    write_manifest(folder, key=KEY, produced_by={"what": "test"})
    return folder


def test_the_manifest_records_every_file_but_itself(tmp_path: Path) -> None:
    record = read_manifest(entry(tmp_path / "e"))
    assert record["key"] == KEY and record["version"] == 1 and record["produced_by"] == {"what": "test"}
    assert record["files"] == {
        "weights.bin": {"size": 10, "sha256": "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"},
        "sub/config.json": {"size": 2, "sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}


def test_a_sound_entry_for_its_own_key_has_no_damage(tmp_path: Path) -> None:
    folder = entry(tmp_path / "e")
    assert damage(folder) is None and damage(folder, KEY) is None


def test_an_entry_under_another_key_is_damaged(tmp_path: Path) -> None:
    folder = entry(tmp_path / "e")
    assert damage(folder, "f" * 64) == "manifest is for key eeeeeeeeeeee"


def test_extra_files_are_allowed(tmp_path: Path) -> None:
    folder = entry(tmp_path / "e")
    (folder / "reader_cache.bin").write_bytes(b"added by a reader")
    assert damage(folder, KEY) is None


@pytest.mark.parametrize("harm, reason", [
    (lambda f: (f / "sub" / "config.json").unlink(), "sub/config.json missing"),
    (lambda f: (f / "weights.bin").write_bytes(b"01234567890"), "weights.bin size 11 != 10"),
    (lambda f: (f / "weights.bin").write_bytes(b"0123456780"), "weights.bin sha256 mismatch"),
    (lambda f: (f / MANIFEST).write_text("{not json"), "no readable manifest"),
    (lambda f: (f / MANIFEST).write_text(json.dumps({"key": KEY})), "no readable manifest"),
])
def test_each_kind_of_damage_is_named(tmp_path: Path, harm, reason: str) -> None:
    folder = entry(tmp_path / "e")
    harm(folder)
    assert damage(folder, KEY) == reason


def test_every_size_is_checked_before_any_hash(tmp_path: Path) -> None:
    # sub/config.json (listed first) has a changed byte, weights.bin a changed size: the size is
    # reported, found without reading a byte
    folder = entry(tmp_path / "e")
    (folder / "sub" / "config.json").write_text("[]")
    (folder / "weights.bin").write_bytes(b"01234567890")
    assert damage(folder, KEY) == "weights.bin size 11 != 10"


def test_a_fresh_check_reads_the_bytes_again(tmp_path: Path) -> None:
    # A change that keeps the size, mtime and inode (a bit flip on disk) hides behind the memo;
    # `fresh` (drbench cache verify) reads every byte and finds it.
    folder = entry(tmp_path / "e")
    path = folder / "weights.bin"
    assert damage(folder, KEY) is None
    stat = path.stat()
    with open(path, "r+b") as handle:
        handle.write(b"X")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert damage(folder, KEY) is None  # the memo: hashed once per process while nothing visible changed
    seen: list[int] = []
    assert damage(folder, KEY, fresh=True, advance=seen.append) == "weights.bin sha256 mismatch"
    assert sum(seen) == 2 + 10  # both files, read again
    assert sha256_file(path) == sha256_file(path, fresh=True)  # the memo now holds the new hash


def test_a_single_files_manifest_sits_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"weights")
    assert file_damage(path) == "no readable manifest"
    write_file_manifest(path, step=3)
    assert file_record(path) == tmp_path / "checkpoint.pt.manifest.json"
    assert json.loads(file_record(path).read_text())["produced_by"] == {"step": 3}
    assert file_damage(path) is None
    path.write_bytes(b"weightz")
    assert file_damage(path) == "checkpoint.pt sha256 mismatch"
    path.write_bytes(b"w")
    assert file_damage(path) == "checkpoint.pt size 1 != 7"


def test_an_entry_under_another_key_is_moved_aside_not_served(tmp_path: Path) -> None:
    log: list[str] = []
    entries = Entries(tmp_path / "models", log.append)
    entry(tmp_path / "models" / ("f" * 64))  # its manifest says KEY
    assert entries.get("f" * 64) is None
    assert log == [f"cache: models/{'f' * 64} is damaged (manifest is for key eeeeeeeeeeee); rebuilding"]
    assert [p.name.split("-")[0] for p in (tmp_path / "models" / ".damaged").iterdir()] == ["f" * 64]


def test_an_absent_entry_is_a_miss_not_damage(tmp_path: Path) -> None:
    log: list[str] = []
    assert Entries(tmp_path / "models", log.append).get(KEY) is None and log == []
    assert not (tmp_path / "models" / ".damaged").exists()
