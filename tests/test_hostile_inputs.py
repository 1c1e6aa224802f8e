"""Hostile input, byte by byte: what a careless user or an attacker feeds Evergraph, and the clean answer each gets.

Every case here either is refused with a clean error naming the file (and line) or the request, or is an
explicit, counted policy; none crashes, none is silently accepted as a new entity, none reaches the model or the
champion. Add a case whenever a new way in is found (issue 13).
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from evergraph.kg.engine.atomic import sha256_file
from evergraph.kg.engine.ingest import (
    MAX_FIELD_CHARS,
    GrowingKG,
    read_names,
    read_snapshot_dir,
    read_split,
    text_field_problem,
)
from evergraph.kg.errors import BundleError, InsecureServeError, SnapshotError
from evergraph.kg.service.guard import check_exposure, is_loopback
from evergraph.kg.service.server import create_app
from evergraph.kg.store.bundle import Bundle, read_pointer
from evergraph.kg.store.bundle_writer import remove_stale_tmp
from evergraph.kg.store.home import EvergraphHome
from tests.servers import running

GOOD = b"city/berlin\tlocated_in\tcountry/germany\nperson/ada\tborn_in\tcity/berlin\n"


def snapshot(root: Path, index: int, *, train: bytes = GOOD, valid: bytes = b"", test: bytes = b"") -> Path:
    """``root/<index>/{train,valid,test}.txt`` with these exact bytes."""
    directory = root / str(index)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (("train", train), ("valid", valid), ("test", test)):
        (directory / f"{name}.txt").write_bytes(data)
    return directory


def problems(error: pytest.ExceptionInfo[SnapshotError]) -> list[tuple[str, int, str]]:
    return [(Path(p.path).name, p.line, p.reason) for p in error.value.problems]


# -- byte-order marks ----------------------------------------------------------------------------------------


def test_a_leading_bom_is_stripped_and_counted_not_a_new_entity(tmp_path: Path) -> None:
    snapshot(tmp_path, 0, train=codecs.BOM_UTF8 + GOOD, test=codecs.BOM_UTF8 + b"person/ada\tlocated_in\tcity/berlin\n")
    kg = GrowingKG.load(tmp_path)
    assert kg.entities.labels == ["city/berlin", "country/germany", "person/ada"]  # no "\ufeffcity/berlin"
    report = kg.snapshots[0].report.to_dict()
    assert report["bom_stripped"] == {"train": 1, "test": 1}
    raw = read_snapshot_dir(tmp_path / "0")
    assert raw.bom_stripped == {"train": 1, "test": 1}
    assert raw.train[0] == ("city/berlin", "located_in", "country/germany")


def test_a_file_without_bom_reports_no_bom_policy(tmp_path: Path) -> None:
    snapshot(tmp_path, 0)
    assert "bom_stripped" not in GrowingKG.load(tmp_path).snapshots[0].report.to_dict()


def test_a_bom_inside_a_file_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    # two files concatenated: the second one's BOM lands at the start of line 2
    first, second = GOOD.splitlines(keepends=True)
    snapshot(tmp_path, 0, train=first + codecs.BOM_UTF8 + second)
    with pytest.raises(SnapshotError) as error:
        read_snapshot_dir(tmp_path / "0")
    ((name, line, reason),) = problems(error)
    assert (name, line) == ("train.txt", 2) and "U+FEFF" in reason and "head" in reason


def test_a_bom_in_a_name_file_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "entity_names.tsv"
    path.write_bytes(codecs.BOM_UTF8 + b"city/berlin\tBerlin\n")
    assert read_names(path) == {"city/berlin": "Berlin"}


def test_utf16_is_refused_as_invalid_utf8(tmp_path: Path) -> None:
    snapshot(tmp_path, 0, train=GOOD.decode().encode("utf-16"))
    with pytest.raises(SnapshotError, match=r"train.txt:1: invalid UTF-8"):
        read_snapshot_dir(tmp_path / "0")


# -- NUL and other control or invisible characters -------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("\x00", "U+0000"),  # NUL: city/\x00paris beside city/paris
        ("\x1b", "U+001B"),  # ESC: terminal escape sequences in labels
        ("\x07", "U+0007"),  # BEL
        ("\x0b", "U+000B"),  # vertical tab inside a label
        ("\x0c", "U+000C"),  # form feed inside a label
        ("\r", "U+000D"),  # a lone CR (old Mac line ending) joins two lines into one field
        ("\x7f", "U+007F"),  # DEL
        ("\x85", "U+0085"),  # NEL (C1)
        ("\u200b", "U+200B"),  # zero-width space
        ("\u2028", "U+2028"),  # line separator
        ("\u202e", "U+202E"),  # right-to-left override
        ("\u2066", "U+2066"),  # left-to-right isolate
    ],
)
def test_control_and_invisible_characters_are_rejected_with_file_and_line(tmp_path: Path, char: str, code: str) -> None:
    train = GOOD + f"city/{char}paris\tlocated_in\tcountry/france\n".encode()
    snapshot(tmp_path, 0, train=train)
    with pytest.raises(SnapshotError) as error:
        GrowingKG.load(tmp_path)
    ((name, line, reason),) = problems(error)
    assert (name, line) == ("train.txt", 3)
    assert code in reason and "head" in reason and "remove it" in reason
    assert f"{tmp_path / '0' / 'train.txt'}:3:" in str(error.value)


def test_nul_in_a_name_file_and_in_valid_is_rejected(tmp_path: Path) -> None:
    names = tmp_path / "entity_names.tsv"
    names.write_bytes(b"city/berlin\tBer\x00lin\n")
    with pytest.raises(SnapshotError, match=r"entity_names.tsv:1: forbidden character U\+0000 \(NUL\) in the name"):
        read_names(names)
    snapshot(tmp_path, 0, valid=b"city/berlin\tborn_in\tperson/\x00ada\n")
    with pytest.raises(SnapshotError, match=r"valid.txt:1: forbidden character U\+0000 \(NUL\) in the tail"):
        read_snapshot_dir(tmp_path / "0")


def test_legitimate_unicode_is_kept() -> None:
    for value in ("city/münchen", "person/nasrin\u200cmohammadi", "family/👩\u200d👩\u200d👧", "a b", "東京"):
        assert text_field_problem(value, name="head") is None, value


def test_the_field_rule_is_one_reusable_function() -> None:
    assert text_field_problem("", name="head") == "empty head"
    assert "a \\r\\n line ending" in (text_field_problem("x\r", name="tail") or "")
    assert "U+0000" in (text_field_problem("a\x00b", name="id") or "")
    assert "more than the 10 allowed" in (text_field_problem("x" * 11, name="id", max_chars=10) or "")


# -- line endings, sizes, empty files ----------------------------------------------------------------------------


def test_crlf_line_endings_are_named(tmp_path: Path) -> None:
    snapshot(tmp_path, 0, train=GOOD.replace(b"\n", b"\r\n"))
    with pytest.raises(SnapshotError) as error:
        read_snapshot_dir(tmp_path / "0")
    assert [(n, line) for n, line, _ in problems(error)] == [("train.txt", 1), ("train.txt", 2)]
    assert all("\\r\\n line ending" in reason for _, _, reason in problems(error))


def test_invalid_utf8_and_an_overlong_nul_are_rejected_per_line(tmp_path: Path) -> None:
    snapshot(tmp_path, 0, train=GOOD + b"city/\xff\tr\tx\n" + b"city/\xc0\x80\tr\tx\n")
    with pytest.raises(SnapshotError) as error:
        read_snapshot_dir(tmp_path / "0")
    assert [(n, line) for n, line, _ in problems(error)] == [("train.txt", 3), ("train.txt", 4)]
    assert all(reason.startswith("invalid UTF-8") for _, _, reason in problems(error))


def test_a_huge_line_is_refused_not_made_an_entity(tmp_path: Path) -> None:
    huge = b"city/" + b"x" * (2 * 1024 * 1024)
    snapshot(tmp_path, 0, train=GOOD + huge + b"\tlocated_in\tcountry/germany\n")
    with pytest.raises(SnapshotError) as error:
        read_snapshot_dir(tmp_path / "0")
    ((name, line, reason),) = problems(error)
    assert (name, line) == ("train.txt", 3) and f"more than the {MAX_FIELD_CHARS} allowed" in reason
    assert len(str(error.value)) < 1000  # the message does not echo the line


def test_a_long_line_of_short_fields_is_fine(tmp_path: Path) -> None:
    field = "x" * (MAX_FIELD_CHARS - 10)
    (tmp_path / "train.txt").write_text(f"{field}\tr\t{field}\n", encoding="utf-8")
    assert read_split(tmp_path / "train.txt") == ([(field, "r", field)], 0)


def test_an_empty_train_file_is_an_error_naming_it(tmp_path: Path) -> None:
    snapshot(tmp_path, 0, train=b"")
    with pytest.raises(SnapshotError) as error:
        GrowingKG.load(tmp_path)
    ((name, line, reason),) = problems(error)
    assert (name, line) == ("train.txt", 0) and "holds no facts" in reason
    assert str(tmp_path / "0" / "train.txt") in str(error.value)


def test_a_flood_of_bad_lines_is_summarised_not_echoed(tmp_path: Path) -> None:
    snapshot(tmp_path, 0, train=b"".join(b"city/\x00%d\tr\ty\n" % i for i in range(20_000)))
    with pytest.raises(SnapshotError) as error:
        read_snapshot_dir(tmp_path / "0")
    assert len(error.value.problems) == 20_000  # every line is named ...
    assert "... and 19980 more problem(s)" in str(error.value) and len(str(error.value)) < 10_000  # ... not printed


def test_a_newline_only_train_file_is_an_error(tmp_path: Path) -> None:
    snapshot(tmp_path, 0, train=b"\n")
    with pytest.raises(SnapshotError, match=r"train.txt:1: empty line"):
        read_snapshot_dir(tmp_path / "0")


def test_an_empty_later_snapshot_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    snapshot(tmp_path, 0)
    snapshot(tmp_path, 1, train=b"")
    with pytest.raises(SnapshotError, match=r"1/train.txt: holds no facts"):
        GrowingKG.load(tmp_path)


def test_train_command_on_an_empty_snapshot_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evergraph.kg.service.cli import main

    snapshot(tmp_path / "data", 0, train=b"")
    code = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--max-epochs", "1"])
    out = capsys.readouterr()
    assert code != 0
    assert "holds no facts" in " ".join(out.out.split()) and "Traceback" not in out.out + out.err
    assert "MRR" not in out.out  # no "MRR 0.0000 over 0 queries"


# -- `evergraph run` validates before Prefect starts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("snapshots", "expected"),
    [
        ({0: b""}, "0/train.txt: holds no facts"),
        ({0: GOOD, 1: b""}, "1/train.txt: holds no facts"),
        ({0: GOOD + b"city/\x00paris\tlocated_in\tcountry/france\n"}, "0/train.txt:3: forbidden character U+0000"),
    ],
)
def test_run_refuses_bad_data_before_prefect_and_leaves_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    restored_environment: None,
    snapshots: dict[int, bytes],
    expected: str,
) -> None:
    import evergraph.flows.lifelong
    from evergraph.flows.cli import main

    def no_prefect(**kwargs: object) -> None:
        raise AssertionError("the pipeline (and its Prefect API) must not start on bad data")

    monkeypatch.setattr(evergraph.flows.lifelong, "lifelong_pipeline", no_prefect)
    for index, train in snapshots.items():
        snapshot(tmp_path / "data", index, train=train)
    home = tmp_path / "home"
    code = main(["run", "--data", str(tmp_path / "data"), "--home", str(home), "--quiet", "--device", "cpu"])
    out = capfd.readouterr()
    assert code != 0
    assert expected in " ".join(out.out.split())
    assert "Traceback" not in out.out + out.err
    assert not (home / "runs").exists() and not (home / "bundles").exists()


# -- the knowledge server ------------------------------------------------------------------------------------


TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _no_knowledge() -> object:
    raise AssertionError("a refused request must never reach the knowledge")


@pytest.fixture(scope="module")
def guarded() -> Iterator[httpx.Client]:
    """A server with a token and a 1,000-byte body cap whose routes must never run for these requests."""
    app = create_app(_no_knowledge, token=TOKEN, max_body_bytes=1000)  # type: ignore[arg-type]
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/version"])
def test_docs_and_schema_need_the_token(guarded: httpx.Client, path: str) -> None:
    refused = guarded.get(path)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert guarded.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    if path != "/version":
        assert guarded.get(path, headers=AUTH).status_code == 200


def test_auth_is_checked_before_the_body_is_read(guarded: httpx.Client) -> None:
    assert guarded.post("/guide", content=b"{not json").status_code == 401  # not 422
    assert guarded.post("/guide", content=b"x" * 50_000).status_code == 401  # not 413


def test_an_oversized_body_is_413_before_parsing(guarded: httpx.Client) -> None:
    answer = guarded.post("/guide", content=b"{" + b" " * 5000 + b"}", headers=AUTH)
    assert answer.status_code == 413 and "1000 bytes allowed" in answer.json()["detail"]


def test_an_oversized_chunked_body_is_413(guarded: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 100

    answer = guarded.post("/guide", content=chunks(), headers=AUTH)
    assert answer.status_code == 413 and "longer than the 1000 bytes" in answer.json()["detail"]


def test_a_small_malformed_body_still_gets_422_after_auth(guarded: httpx.Client) -> None:
    headers = {**AUTH, "content-type": "application/json"}
    assert guarded.post("/guide", content=b"{not json", headers=headers).status_code == 422


def test_deeply_nested_json_within_the_cap_is_a_client_error() -> None:
    app = create_app(_no_knowledge, token=TOKEN)  # type: ignore[arg-type]  # the default 64 KiB cap
    headers = {**AUTH, "content-type": "application/json"}
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = client.post("/guide", content=b"[" * 30_000 + b"]" * 30_000, headers=headers)
    assert answer.status_code == 400  # too deep for the JSON parser: the client's fault, never a crash


def test_the_body_cap_defaults_to_64_kib(tmp_path: Path) -> None:
    app = create_app(_no_knowledge)  # type: ignore[arg-type]
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/guide", content=b"x" * (64 * 1024 + 1)).status_code == 413


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_a_public_host_without_a_token_is_refused_unless_insecure(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(InsecureServeError, match="--insecure"):
        check_exposure(host=host, token=None, insecure=False)
    check_exposure(host=host, token=None, insecure=True)
    check_exposure(host=host, token="t", insecure=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_token(host: str) -> None:
    check_exposure(host=host, token=None, insecure=False)


def test_serve_command_refuses_a_public_host_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evergraph.kg.service.cli import main

    code = main(["serve", "--home", str(tmp_path / "no-home"), "--host", "0.0.0.0"])
    out = " ".join(capsys.readouterr().out.split())
    assert code != 0 and "refusing to serve on 0.0.0.0 without a token" in out


# -- tampered and half-written bundles, garbage pointers ------------------------------------------------------


def _rewrite_hashes(bundle: Path, name: str) -> None:
    """Make ``bundle``'s manifest (and the index sidecar) agree with the current bytes of ``name``: tampering
    that hash checks cannot see."""
    sidecar = bundle / "index.faiss.json"
    if name == "index.faiss":
        meta = json.loads(sidecar.read_text())
        if "files" in meta:  # sidecar format 2 (format 1 held one "sha256")
            meta["files"] = {key: sha256_file(bundle / name) for key in meta["files"]}  # its one index file
        else:
            meta["sha256"] = sha256_file(bundle / name)
        sidecar.write_text(json.dumps(meta))
    manifest = json.loads((bundle / "manifest.json").read_text())
    for file in (name, "index.faiss.json"):
        manifest["files"][file] = sha256_file(bundle / file)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_garbage_index_with_rewritten_hashes_is_a_bundle_error(champion_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(champion_bundle, tmp_path / "v2"))
    (bundle / "index.faiss").write_bytes(b"garbage" * 100)
    _rewrite_hashes(bundle, "index.faiss")
    with pytest.raises(BundleError) as error:
        Bundle.load(bundle)
    assert str(bundle / "index.faiss") in str(error.value) and "FAISS" in str(error.value)


def test_a_vocabulary_with_a_nul_and_rewritten_hashes_is_a_bundle_error(champion_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(champion_bundle, tmp_path / "v2"))
    names = bundle / "entity_names.tsv"
    names.write_bytes(names.read_bytes().replace(b"\t", b"\t\x00", 1))
    _rewrite_hashes(bundle, "entity_names.tsv")
    with pytest.raises(BundleError, match=r"entity_names.tsv"):
        Bundle.load(bundle)


def test_a_tampered_file_without_rewritten_hashes_is_named(champion_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(champion_bundle, tmp_path / "v2"))
    with (bundle / "weights.pt").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match=r"weights.pt"):
        Bundle.load(bundle)


@pytest.mark.parametrize("content", [b"", b"{", b"\x00\x00", b"[]", b'{"version": "1"}', codecs.BOM_UTF8 + b"{}"])
def test_a_garbage_champion_pointer_is_a_bundle_error(tmp_path: Path, content: bytes) -> None:
    pointer = tmp_path / "champion.json"
    pointer.write_bytes(content)
    with pytest.raises(BundleError, match="champion.json"):
        read_pointer(pointer)


def test_half_written_bundles_of_dead_writers_are_removed(tmp_path: Path) -> None:
    home = EvergraphHome(tmp_path / "home")
    dead = home.bundles / ".v3.999999999.ab12cd.tmp"  # its writer (pid 999999999) is gone
    legacy = home.bundles / ".v4.ab12cd34.tmp"  # written before writer pids were recorded
    live = home.bundles / f".v5.{os.getpid()}.xy98zw.tmp"  # a write in progress in this process
    for directory in (dead, legacy, live, home.bundle_dir(2)):
        (directory / "weights.pt").parent.mkdir(parents=True)
        (directory / "weights.pt").write_bytes(b"half")
    removed = remove_stale_tmp(home.bundles)
    assert sorted(removed) == sorted([dead, legacy])
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and home.bundle_dir(2).exists()
    assert remove_stale_tmp(tmp_path / "missing") == []


def test_writing_a_bundle_cleans_a_killed_writers_tmp(knowledge_run: Path, tmp_path: Path) -> None:
    from evergraph.kg.store.bundle_writer import write_bundle

    bundles = tmp_path / "bundles"
    stale = bundles / ".v1.999999999.k1ll3d.tmp"
    stale.mkdir(parents=True)
    (stale / "weights.pt").write_bytes(b"half")
    write_bundle(run_dir=knowledge_run, snapshot=0, dest=bundles / "v1", version="1")
    assert not stale.exists()
    assert sorted(p.name for p in bundles.iterdir()) == ["v1"]


def test_a_damaged_quarantine_file_is_one_clean_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evergraph.kg.service.cli import main

    facts = tmp_path / "home" / "quarantine" / "facts.json"
    facts.parent.mkdir(parents=True)
    facts.write_bytes(b'{"format": 1, "facts": [\x00')
    for argv in (["list"], ["release", "1"], ["reject", "--all"]):
        assert main(["quarantine", *argv, "--home", str(tmp_path / "home")]) == 2
        out = capsys.readouterr().out
        assert out.startswith("error:") and "facts.json is not valid JSON" in out and "Traceback" not in out
