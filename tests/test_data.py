"""Tests for harness.data: dataset ids, archives, the offline mirror and collection loading.

The IR_DATASETS_HOME is shared by the whole session (conftest.py), so tests that need a
private home patch ``archives_for`` to point at tmp_path, and tests on the shared home accept
an archive that another test already put there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from harness.data import availability
from harness.data.availability import (Archive, archives_for, check_dataset_id, ensure_available,
                                       load_manifest, resolve_mirror)
from harness.data.catalog import docs_count
from harness.data.collection import doc_text, load_collection
from harness.errors import DataError

REPO = Path(__file__).resolve().parent.parent
CRAN = "cranfield/cran.tar.gz"


def _fake_archive(home: Path, relpath: str, url: str | None = "https://example.org/a") -> Archive:
    return Archive(relpath, home / relpath, url)


def _use_archives(monkeypatch: pytest.MonkeyPatch, *archives: Archive) -> None:
    monkeypatch.setattr(availability, "archives_for", lambda dataset_id: list(archives))


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("[Errno 101] Network is unreachable")
    monkeypatch.setattr(availability.socket, "create_connection", refuse)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()}


# --- ids -----------------------------------------------------------------------------------

def test_light_import_does_not_load_ir_datasets_or_torch() -> None:
    code = ("import sys, harness.data; "
            "assert 'ir_datasets' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


@pytest.mark.parametrize("bad, hint", [("beir/scifcat/test", "did you mean 'beir/scifact/test'"),
                                       ("cranfeild", "did you mean 'cranfield'"),
                                       ("no-such-thing-at-all", "ir-datasets.com")])
def test_unknown_id_raises_with_suggestion(bad: str, hint: str) -> None:
    with pytest.raises(DataError, match="unknown collection") as err:
        check_dataset_id(bad)
    assert hint in str(err.value) and "\n" not in str(err.value)


def test_known_ids_pass() -> None:
    check_dataset_id("beir/scifact/test")
    check_dataset_id("clirmatrix/en/bi139-base/de/test1")  # a pattern id, not listed


# --- archives ------------------------------------------------------------------------------

def test_archives_for_scifact(irds_home: Path) -> None:
    [archive] = archives_for("beir/scifact/test")
    assert archive.relpath == "beir/scifact/source.zip"
    assert archive.path == irds_home / "beir/scifact/source.zip"
    assert archive.url and archive.url.startswith("https://")


def test_archives_for_dedupes_and_keeps_fallbacks() -> None:
    [cran] = archives_for("cranfield")
    assert cran.relpath == CRAN and len(cran.fallback_urls) == 1
    # docs and queries share one archive; the streamed top1000 scoreddocs are not listed
    assert [a.relpath for a in archives_for("msmarco-passage/dev/small")] == [
        "msmarco-passage/collectionandqueries.tar.gz"]


def test_manifest_matches_the_mirror(mirror: Path) -> None:
    for relpath, entry in load_manifest().items():
        data = (mirror / relpath).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])


# --- mirror --------------------------------------------------------------------------------

@pytest.mark.parametrize("cli, env, recipe, expected", [
    ("c", "e", "r", "c"), (None, "e", "r", "e"), (None, None, "r", "r"), (None, None, None, None),
    (None, "", "r", "r"),
])
def test_resolve_mirror_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: str | None,
                                   env: str | None, recipe: str | None,
                                   expected: str | None) -> None:
    for name in "cer":
        (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    if env is None:
        monkeypatch.delenv("DRBENCH_MIRROR", raising=False)
    else:
        monkeypatch.setenv("DRBENCH_MIRROR", env)
    assert resolve_mirror(cli, recipe) == (Path(expected) if expected else None)


def test_resolve_mirror_rejects_non_directory(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRBENCH_MIRROR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="DRBENCH_MIRROR .* is not a directory"):
        resolve_mirror(None, None)


def test_mirror_copy_is_verified_then_cached(irds_home: Path, mirror: Path) -> None:
    relpath = "beir/nfcorpus/source.zip"
    was_cached = (irds_home / relpath).is_file()  # another test may have loaded nfcorpus
    expected = load_manifest()[relpath]["sha256"]
    [first] = ensure_available("beir/nfcorpus/dev", mirror)
    assert first == (relpath, expected, "cached" if was_cached else "mirror")
    [second] = ensure_available("beir/nfcorpus/dev", mirror)
    assert second == (relpath, expected, "cached")
    assert not list((irds_home / "beir/nfcorpus").glob("*.part"))


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate"])
def test_corrupt_mirror_copy_leaves_nothing(tmp_path: Path, mirror: Path,
                                            monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    home, fake = tmp_path / "home", tmp_path / "mirror"
    data = bytearray((mirror / CRAN).read_bytes())
    if damage == "flip-a-byte":
        data[1000] ^= 0xFF
    else:
        del data[-100:]
    (fake / "cranfield").mkdir(parents=True)
    (fake / CRAN).write_bytes(data)
    _use_archives(monkeypatch, _fake_archive(home, CRAN))
    with pytest.raises(DataError) as err:
        ensure_available("cranfield", fake)
    message = str(err.value)
    assert CRAN in message and load_manifest()[CRAN]["sha256"] in message
    assert hashlib.sha256(data).hexdigest() in message and "\n" not in message
    assert not any(p.is_file() for p in home.rglob("*"))  # no archive, no .part, no sidecar
    assert _files(fake) == {CRAN: bytes(data)}


def test_unlisted_mirror_archive_is_copied_unverified(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    home, fake, relpath = tmp_path / "home", tmp_path / "mirror", "extra/thing.tar.gz"
    (fake / "extra").mkdir(parents=True)
    (fake / relpath).write_bytes(b"not in the manifest")
    _use_archives(monkeypatch, _fake_archive(home, relpath))
    with caplog.at_level(logging.WARNING, logger=availability.__name__):
        [record] = ensure_available("anything", fake)
    assert record == (relpath, hashlib.sha256(b"not in the manifest").hexdigest(), "mirror")
    assert "unverified" in caplog.text
    assert (home / relpath).read_bytes() == b"not in the manifest"
    assert _files(fake) == {relpath: b"not in the manifest"}  # the mirror is never written


def test_cached_digest_comes_from_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, relpath = tmp_path / "home", "x/archive.zip"
    (home / "x").mkdir(parents=True)
    (home / relpath).write_bytes(b"abc")
    _use_archives(monkeypatch, _fake_archive(home, relpath))
    [first] = ensure_available("anything")
    assert first == (relpath, hashlib.sha256(b"abc").hexdigest(), "cached")
    calls = []
    real = availability.sha256_file
    monkeypatch.setattr(availability, "sha256_file", lambda p: calls.append(p) or real(p))
    assert ensure_available("anything") == [first] and calls == []
    os.utime(home / relpath, ns=(0, 0))  # a changed mtime invalidates the sidecar
    assert ensure_available("anything") == [first] and len(calls) == 1


# --- network -------------------------------------------------------------------------------

def test_not_cached_offline_fails_fast(mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_network(monkeypatch)
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        ensure_available("antique/test", mirror)  # the mirror has no antique archives
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "'antique/test' is not cached" in message and "--mirror" in message
    assert "Network is unreachable" in message and "\n" not in message


def test_unresolvable_host_fails_without_patching(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # .invalid never resolves (RFC 2606), online or not, so this runs the real probe
    _use_archives(monkeypatch, _fake_archive(tmp_path, "a/b.zip", "https://x.invalid/b.zip"))
    start = time.monotonic()
    with pytest.raises(DataError, match="no network: cannot reach x.invalid:443"):
        ensure_available("anything", probe_timeout=0.5)
    assert time.monotonic() - start < 10


def test_hanging_dns_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # create_connection's DNS lookup ignores its timeout; the probe must not wait for it
    def hang(*args: object, **kwargs: object) -> None:
        time.sleep(3)
        raise OSError("timed out")  # what a real lookup would end with

    monkeypatch.setattr(availability.socket, "create_connection", hang)
    _use_archives(monkeypatch, _fake_archive(tmp_path, "a/b.zip"))
    start = time.monotonic()
    with pytest.raises(DataError, match="no answer within 0.2 s"):
        ensure_available("anything", probe_timeout=0.2)
    assert time.monotonic() - start < 2


def test_reachable_network_leaves_download_to_ir_datasets(irds_home: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    class Conn:
        def close(self) -> None:
            pass
    monkeypatch.setattr(availability.socket, "create_connection", lambda *a, **k: Conn())
    records = ensure_available("antique/test")
    assert records and {(r.sha256, r.source) for r in records} == {(None, "download")}
    assert not (irds_home / "antique/collection.tsv").exists()


# --- collections ---------------------------------------------------------------------------

def test_load_cranfield(mirror: Path) -> None:
    c = load_collection("cranfield", mirror)
    assert (len(c.doc_ids), len(c.doc_texts), len(c.queries)) == (1400, 1400, 225)
    assert set(c.queries) == set(c.qrels)
    assert sum(map(len, c.qrels.values())) == 1612  # 1837 judgments less the 225 with -1
    assert min(r for judged in c.qrels.values() for r in judged.values()) >= 1
    assert c.doc_texts[0].count("experimental investigation of the aerodynamics") == 1
    assert c.docs_id == "cranfield"
    [record] = c.archives  # "mirror" if this test put it in the shared home first
    assert record[:2] == (CRAN, load_manifest()[CRAN]["sha256"]) and record.source != "download"


def test_document_texts_stream_until_read_by_row(mirror: Path) -> None:
    c = load_collection("cranfield", mirror)
    chunks = list(c.doc_texts.chunks(500))  # type: ignore[attr-defined]
    assert [len(x) for x in chunks] == [500, 500, 400] and not c.doc_texts.loaded  # type: ignore[attr-defined]
    assert [t for chunk in chunks for t in chunk] == list(c.doc_texts)  # the same texts, in corpus order
    assert c.doc_texts[1399] == chunks[-1][-1] and c.doc_texts.loaded  # type: ignore[attr-defined]


def test_the_report_reads_the_texts_the_encoder_sees_and_a_holdout_as_its_training_split(mirror: Path) -> None:
    """The drill-down's query texts and untitled documents follow the collection's text rules,
    and a dev split stored under its holdout label reads its training split."""
    from types import SimpleNamespace

    from harness.data.holdout import holdout_label
    from leaderboard.report.texts import _title, read_texts

    c = load_collection("cranfield", mirror)
    asked = sorted(c.queries)[:3]
    texts = read_texts(holdout_label("cranfield", "holdout:0.1"), asked, [c.doc_ids[0]], mirror)
    assert texts.missing is None and texts.queries == {q: c.queries[q] for q in asked}
    untitled = SimpleNamespace(title="", text=None, default_text=lambda: "only a default text")
    assert _title(untitled) == doc_text(untitled) == "only a default text"


def test_a_corpus_changed_under_a_run_is_one_line() -> None:
    from harness.data.doc_texts import DocTexts

    texts = DocTexts("toy", 3, lambda: iter(["a", "b"]))
    with pytest.raises(DataError, match="'toy' yielded 2 documents, but 3 when it was loaded"):
        list(texts)


def test_load_scifact_test(mirror: Path, capfd: pytest.CaptureFixture[str]) -> None:
    c = load_collection("beir/scifact/test", mirror)
    assert (len(c.doc_ids), len(c.queries), sum(map(len, c.qrels.values()))) == (5183, 300, 339)
    assert c.docs_id == "beir/scifact"
    i = c.doc_ids.index("4983")
    assert c.doc_texts[i].startswith("Microstructural development of human newborn cerebral white "
                                     "matter assessed in vivo by diffusion tensor magnetic "
                                     "resonance imaging. Alterations")
    assert "[INFO]" not in capfd.readouterr().err  # ir_datasets' logging and bars are silenced


def test_load_without_docs_and_split_without_qrels(mirror: Path) -> None:
    c = load_collection("beir/scifact/train", mirror, with_docs=False)
    assert (c.doc_ids, len(c.queries), c.docs_id) == ((), 809, "beir/scifact")
    with pytest.raises(DataError, match="'beir/scifact' has no qrels"):
        load_collection("beir/scifact", mirror)


def test_docs_count_reads_metadata() -> None:
    assert docs_count("cranfield") == 1400


Doc = namedtuple("Doc", "doc_id title text")


@pytest.mark.parametrize("title, text, expected", [
    ("A title", "Body text.", "A title Body text."),
    ("", "Body text.", "Body text."),
    ("wing in a\nslipstream .", "wing in a slipstream .\n body", "wing in a slipstream .\n body"),
    ("oseen's criticism of it", "oseens's criticism of it. body", "oseens's criticism of it. body"),
])
def test_doc_text_adds_title_once(title: str, text: str, expected: str) -> None:
    assert doc_text(Doc("d", title, text)) == expected
