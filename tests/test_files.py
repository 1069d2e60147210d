"""harness.files: a file is replaced whole or not at all, and hashed in chunks."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from harness.files import (CHUNK, hash_file, replacing, replacing_folder, replacing_open, sha256_file,
                           write_bytes_atomic, write_text_atomic)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_finished_block_renames_its_temp_file_onto_the_target(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("new")
        assert target.read_text() == "old"  # readers see the old file until the rename
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.json"]


def test_a_failed_block_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing_open(target, "w", encoding="utf-8") as handle:
        handle.write("half")
        raise RuntimeError("killed halfway")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


def test_permissions_are_a_plain_files_unless_given(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.md", ["a", "b"])
        with replacing(tmp_path / "archive.zip", suffix=".part", permissions=0o640) as tmp:
            assert tmp.name.endswith(".part")
            tmp.write_bytes(b"zip")
    finally:
        os.umask(umask)
    assert (tmp_path / "report.md").read_text() == "ab" and mode(tmp_path / "report.md") == 0o644
    assert mode(tmp_path / "archive.zip") == 0o640


def test_written_bytes_come_back_with_their_size_and_sha256(tmp_path: Path) -> None:
    data = os.urandom(CHUNK + 7)  # more than one chunk
    size, digest = write_bytes_atomic(tmp_path / "m.npy", lambda handle: handle.write(data))
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert (tmp_path / "m.npy").read_bytes() == data


def test_a_file_is_hashed_in_chunks_as_a_whole(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 3)
    (tmp_path / "f").write_bytes(data)
    seen: list[int] = []
    assert sha256_file(tmp_path / "f", seen.append) == hashlib.sha256(data).hexdigest()
    assert seen == [CHUNK, CHUNK, 3]
    fed = hash_file(hashlib.sha256(b"prefix"), tmp_path / "f")
    assert fed.hexdigest() == hashlib.sha256(b"prefix" + data).hexdigest()


# --- folders ---------------------------------------------------------------------------------

def test_a_finished_folder_is_renamed_into_place_readable(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        (tmp_path / "out").mkdir()  # an empty folder is taken as missing
        with replacing_folder(tmp_path / "out") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".out.") and tmp.name.endswith(".tmp")
            (tmp / "a.txt").write_text("new")
    finally:
        os.umask(umask)
    assert os.listdir(tmp_path) == ["out"] and (tmp_path / "out" / "a.txt").read_text() == "new"
    assert mode(tmp_path / "out") == 0o755


@pytest.mark.parametrize("replace", [False, True])
def test_a_failed_folder_leaves_the_old_one_and_no_temp_folder(tmp_path: Path, replace: bool) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replacing_folder(tmp_path / "out", replace=replace) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed halfway")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == ["old.txt"]


def test_a_folder_with_files_is_replaced_only_when_asked(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(OSError), replacing_folder(tmp_path / "out") as tmp:
        (tmp / "a.txt").write_text("new")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == ["old.txt"]
    with replacing_folder(tmp_path / "out", replace=True) as tmp:
        (tmp / "a.txt").write_text("new")
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == ["a.txt"]
