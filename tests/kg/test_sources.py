"""Sources: lkge folders with removed.txt, dumps folders of N-Triples/Turtle/TSV/CSV exports, diffs, splits, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evergraph.kg.engine.ingest import GrowingKG, load_shared
from evergraph.kg.engine.sources import SplitConfig, detect_format, split_of
from evergraph.kg.engine.sources.rdf import read_rdf
from evergraph.kg.engine.sources.table import read_table
from evergraph.kg.errors import SnapshotError

LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
NAME = "http://schema.org/name"


def facts(n: int, *, offset: int = 0) -> list[tuple[str, str, str]]:
    """``n <= 400`` distinct facts over 40 entities (``offset`` shifts the entity ids) and 10 relations."""
    return [
        (f"http://e/{i % 40 + offset}", f"http://r/{i // 40 % 10}", f"http://e/{(i * 7 + 3) % 40 + offset}")
        for i in range(n)
    ]


def nt(rows: list[tuple[str, str, str]], extra: str = "") -> str:
    return "".join(f"<{h}> <{r}> <{t}> .\n" for h, r, t in rows) + extra


def tsv(rows: list[tuple[str, str, str]], *, header: bool = True) -> str:
    return ("head\trelation\ttail\n" if header else "") + "".join("\t".join(row) + "\n" for row in rows)


@pytest.fixture
def dumps(tmp_path: Path) -> Path:
    """Three exports: all of v1, v2 drops 10 facts and adds 20 (TSV), v3 (Turtle) adds back 2 dropped ones."""
    root = tmp_path / "dumps"
    root.mkdir()
    base = facts(300)
    (root / "2026-01-01.nt").write_text(
        nt(base, f'<http://e/1> <{LABEL}> "Ada"@en .\n<http://e/1> <http://r/age> "3" .\n')
    )
    second = base[10:] + facts(20, offset=1000)
    (root / "2026-02-01.tsv").write_text(tsv([(h, r, t) for h, r, t in second]))
    third = second + base[:2]
    (root / "2026-03-01.ttl").write_text(
        f'@prefix s: <http://schema.org/> .\n{nt(third)}<http://e/2> s:name "Grace" .\n<http://r/0> s:name "likes" .\n'
    )
    (root / "README.md").write_text("not an export")
    (root / ".2026-04-01.nt.part").write_text("half written <")
    return root


# ---------------------------------------------------------------------------------------------------- readers


def test_ntriples_facts_names_attributes_and_blank_nodes(tmp_path: Path) -> None:
    file = tmp_path / "a.nt"
    file.write_text(
        "<http://e/a> <http://r/p> <http://e/b> .\n"
        "_:x <http://r/p> <http://e/a> .\n"
        f'<http://e/a> <{LABEL}> "Ada Lovelace"@en .\n'
        f'<http://e/b> <{NAME}> "B" .\n'
        '<http://e/a> <http://r/born> "1815"^^<http://www.w3.org/2001/XMLSchema#gYear> .\n'
        "<http://e/a> <http://r/p> <http://e/b> .\n"
        "# a comment\n\n"
    )
    content = read_rdf(file, turtle=False)
    assert content.facts == [("http://e/a", "http://r/p", "http://e/b"), ("_:x", "http://r/p", "http://e/a")]
    assert content.names == {"http://e/a": "Ada Lovelace", "http://e/b": "B"}
    assert content.attributes == 1 and content.duplicates == 1 and not content.problems


def test_ntriples_with_escapes_goes_through_the_full_parser(tmp_path: Path) -> None:
    file = tmp_path / "a.nt"
    file.write_text('<http://e/a> <http://r/p> <http://e/b> .\n<http://e/a> <http://r/note> "say \\"hi\\"" .\n')
    content = read_rdf(file, turtle=False)
    assert content.facts == [("http://e/a", "http://r/p", "http://e/b")] and content.attributes == 1


def test_turtle_prefixes_and_anonymous_nodes(tmp_path: Path) -> None:
    file = tmp_path / "a.ttl"
    file.write_text(
        "@prefix e: <http://e/> .\n@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        'e:a e:p e:b ; rdfs:label "A" .\ne:b e:p [ e:q e:a ] .\n'
    )
    content = read_rdf(file, turtle=True)
    assert ("http://e/a", "http://e/p", "http://e/b") in content.facts
    assert len(content.facts) == 3 and content.names == {"http://e/a": "A"}
    blank = [f for f in content.facts if f[0].startswith("_:")]
    assert blank and blank[0][1:] == ("http://e/q", "http://e/a")


A, P, B = "<http://e/a>", "<http://r/p>", "<http://e/b>"
NAMED = f'{A} <{LABEL}> "Ada"@en .\n'
FAST = {  # lines the bulk path of three-IRI lines reads itself
    "plain with duplicates": f"{A} {P} {B} .\n{B} {P} {A} .\n{A} {P} {B} .\n",
    "blank lines, no final newline": f"\n{A} {P} {B} .\n\n\n{B} {P} {A} .",
    "CRLF": f"{A} {P} {B} .\r\n{B} {P} {A} .\r\n",
    "names in the middle, facts after": f'{A} {P} {B} .\n{NAMED}{B} <{NAME}> "B b" .\n{B} {P} {A} .\n',
    "only literals": f'{NAMED}{A} <http://r/age> "3" .\n',
    "non-ASCII IRI": f"<http://e/Zoë> {P} {B} .\n",
}
SLOW = {  # lines it leaves to the slower paths, which must read them exactly as before
    "tabs": f"{A}\t{P}\t{B} .\n",
    "two spaces": f"{A}  {P} {B} .\n",
    "comment after a triple": f"{A} {P} {B} . # note\n",
    "no space before the dot": f"{A} {P} {B}.\n",
    "blank node": f"_:x {P} {B} .\n{A} {P} {B} .\n",
    "escaped IRI": f"<http://e/\\u0041> {P} {B} .\n",
    "an IRI object on a literal line": f'{NAMED}{A} {P} {B} . # "quoted"\n',
    "two triples on a line": f"{A} {P} {B} . {B} {P} {A} .\n",
    "bad lines": f"{A} {P} {B} .\nnot a triple\n{A} {P} <http://e/c>\n<http://e/a b> {P} {B} .\n",
    "invalid UTF-8": f"{A} {P} ".encode() + b"<http://e/\xff> .\n",
}


@pytest.mark.parametrize("case", [*FAST, *SLOW])
def test_ntriples_fast_paths_read_exactly_what_the_full_parser_reads(tmp_path: Path, case: str) -> None:
    from evergraph.kg.engine.sources import rdf

    text = FAST.get(case, SLOW.get(case))
    data = text if isinstance(text, bytes) else text.encode()
    file = tmp_path / "a.nt"
    file.write_bytes(data)
    strict = rdf._Collector()
    rdf._read_with_pyoxigraph(data, turtle=False, where=str(file), collector=strict)
    content = read_rdf(file, turtle=False)
    if case == "invalid UTF-8":  # reported before any parser runs
        assert [(p.line, p.reason) for p in content.problems] == [(1, "byte 36: invalid UTF-8")]
    else:
        assert (content.facts, content.names, content.attributes, content.duplicates, content.problems) == (
            strict.content.facts,
            strict.content.names,
            strict.content.attributes,
            strict.content.duplicates,
            strict.content.problems,
        )
    assert rdf._read_iri_ntriples(data, rdf._Collector()) is (case in FAST)


def test_tables_with_and_without_header_and_csv_quoting(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("Ada\tborn in\tLondon\nAda\tborn in\tLondon\n")
    content = read_table(tmp_path / "a.tsv", delimiter="\t")
    assert content.facts == [("Ada", "born in", "London")] and content.duplicates == 1
    (tmp_path / "b.csv").write_text('subject,predicate,object\n"Lovelace, Ada",born in,London\n')
    assert read_table(tmp_path / "b.csv", delimiter=",").facts == [("Lovelace, Ada", "born in", "London")]


# ------------------------------------------------------------------------------------------------ the diff


def test_dumps_folder_is_diffed_into_snapshots(dumps: Path) -> None:
    assert detect_format(dumps) == "dumps"
    kg = GrowingKG.load(dumps)
    assert len(kg.snapshots) == 3  # README.md and the hidden partial export are no versions
    first, second, third = kg.snapshots
    assert len(first.removed) == 0 and len(second.removed) == 10 and len(third.removed) == 0
    assert first.report.source["added"] == 300 and first.report.source["attributes"] == 1
    assert second.report.source == {"duplicates": 0, "facts": 310, "added": 20, "removed": 10}
    assert third.report.source["added"] == 2  # two retracted facts came back: new facts again
    assert kg.entity_names["http://e/1"] == "Ada" and kg.entity_names["http://e/2"] == "Grace"
    assert kg.relation_names == {"http://r/0": "likes"}
    # the known facts of each version are what that export holds, less the facts excluded as unseen
    exports = [set(facts(300)), set(facts(300)[10:] + facts(20, offset=1000))]
    exports.append(exports[1] | set(facts(2)))
    for index, exported in enumerate(exports):
        known = {
            (kg.entities.label(h), kg.relations.label(r), kg.entities.label(t))
            for h, r, t in kg.known_facts(index).tolist()
        }
        excluded = sum(sum(s.report.unseen_excluded.values()) for s in kg.snapshots[: index + 1])
        assert known <= exported and len(exported) - len(known) <= excluded


def test_new_entities_of_a_dump_get_new_ids_and_old_ids_stay(dumps: Path) -> None:
    kg = GrowingKG.load(dumps)
    assert kg.snapshots[1].num_entities >= kg.snapshots[0].num_entities
    again = GrowingKG.load(dumps)
    assert again.entities.labels == kg.entities.labels


def test_splits_are_stable_and_follow_the_shares() -> None:
    config = SplitConfig()
    rows = facts(4000)
    first = [split_of(*row, config) for row in rows]
    assert first == [split_of(*row, config) for row in rows]  # the same fact, the same split, every time
    shares = {name: first.count(name) / len(first) for name in ("train", "valid", "test")}
    assert 0.86 < shares["train"] < 0.94 and 0.03 < shares["valid"] < 0.07 and 0.03 < shares["test"] < 0.07
    wider = SplitConfig(valid=0.2, test=0.2)
    assert 0.55 < [split_of(*row, wider) for row in rows].count("train") / len(rows) < 0.65
    with pytest.raises(ValueError):
        SplitConfig(valid=0.6, test=0.5)


def test_a_fact_keeps_its_split_in_every_version(dumps: Path) -> None:
    kg = GrowingKG.load(dumps)
    for snap in kg.snapshots:
        for name in ("train", "valid", "test"):
            for h, r, t in getattr(snap, name).tolist():
                labels = (kg.entities.label(h), kg.relations.label(r), kg.entities.label(t))
                assert split_of(*labels, SplitConfig()) == name


def test_source_json_sets_the_splits_and_format(dumps: Path) -> None:
    (dumps / "source.json").write_text('{"format": "dumps", "splits": {"valid": 0.2, "test": 0.2}}')
    kg = GrowingKG.load(dumps)
    first = kg.snapshots[0]
    held_out = len(first.valid) + len(first.test) + sum(first.report.unseen_excluded.values())
    assert held_out > 0.25 * 300
    (dumps / "source.json").write_text('{"format": "csv"}')
    with pytest.raises(SnapshotError, match="source.json"):
        GrowingKG.load(dumps)


def test_format_is_detected_or_forced(dumps: Path, tmp_path: Path) -> None:
    lkge = tmp_path / "lkge"
    (lkge / "0").mkdir(parents=True)
    for name in ("train", "valid", "test"):
        (lkge / "0" / f"{name}.txt").write_text("a\tr\tb\n" if name == "train" else "")
    (lkge / "entity_names.tsv").write_text("a\tA\n")  # a .tsv name file does not make it a dumps folder
    assert detect_format(lkge) == "lkge" and len(GrowingKG.load(lkge).snapshots) == 1
    with pytest.raises(SnapshotError, match="no export files"):
        GrowingKG.load(lkge, format="dumps")
    with pytest.raises(SnapshotError, match="unknown source format"):
        GrowingKG.load(dumps, format="xml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SnapshotError, match="no snapshot folders"):
        GrowingKG.load(empty)


def test_shared_load_sees_a_new_dump(dumps: Path) -> None:
    assert len(load_shared(dumps).snapshots) == 3
    (dumps / "2026-04-01.nt").write_text(nt(facts(300)))
    assert len(load_shared(dumps).snapshots) == 4


def test_a_changed_dump_changes_its_content_hash_only(dumps: Path) -> None:
    before = [s.content_hash for s in GrowingKG.load(dumps).snapshots]
    tsv_file = dumps / "2026-02-01.tsv"
    tsv_file.write_text(tsv_file.read_text() + "http://e/1\thttp://r/1\thttp://e/2\n")
    after = [s.content_hash for s in GrowingKG.load(dumps).snapshots]
    assert before[0] == after[0] and before[1] != after[1] and before[2] == after[2]


# ----------------------------------------------------------------------------------------------- bad input


def test_every_bad_line_of_every_export_in_one_error(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    root.mkdir()
    (root / "1.nt").write_text(
        "<http://e/a> <http://r/p> <http://e/b> .\nnot a triple\n<http://e/a> <http://r/p> <http://e/c>\n"
    )
    (root / "2.tsv").write_text("a\tr\tb\na\tr\n\tr\tb\na \tr\tb\na\tr\tb\x00c\n\n")
    (root / "3.ttl").write_text("@prefix e: <http://e/> .\ne:a e:p e:b .\ne:a e:p .\n")
    (root / "4.csv").write_bytes(b"\xef\xbb\xbfhead,relation,tail\na,r,b\n")
    (root / "5.nt").write_bytes(b"<http://e/a> <http://r/p> <http://e/\xff> .\n")
    (root / "6.tsv").write_text("head\trelation\ttail\n")  # only a header: an empty export
    with pytest.raises(SnapshotError) as raised:
        GrowingKG.load(root)
    found = {(Path(p.path).name, p.line): p.reason for p in raised.value.problems}
    assert set(found) == {
        ("1.nt", 2), ("1.nt", 3), ("2.tsv", 2), ("2.tsv", 3), ("2.tsv", 4), ("2.tsv", 5), ("2.tsv", 6),
        ("3.ttl", 3), ("5.nt", 1), ("6.tsv", 0),
    }  # fmt: skip
    assert found[("1.nt", 2)].startswith("byte 41:") and found[("1.nt", 3)].startswith("byte ")
    assert "expected 3 fields" in found[("2.tsv", 2)] and "empty head" in found[("2.tsv", 3)]
    assert "whitespace" in found[("2.tsv", 4)] and "forbidden character U+0000" in found[("2.tsv", 5)]
    assert "empty line" in found[("2.tsv", 6)]
    assert found[("3.ttl", 3)].startswith("byte 47:")
    assert "invalid UTF-8" in found[("5.nt", 1)] and "holds no fact" in found[("6.tsv", 0)]


def test_a_leading_byte_order_mark_is_dropped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    root.mkdir()
    (root / "1.csv").write_bytes(b"\xef\xbb\xbfhead,relation,tail\na,r,b\nb,r,c\n")
    (root / "2.nt").write_bytes(b"\xef\xbb\xbf<http://e/a> <http://r/p> <http://e/b> .\n")
    kg = GrowingKG.load(root)
    assert kg.snapshots[0].report.source["bom_stripped"] == 1 and kg.snapshots[1].report.source["bom_stripped"] == 1
    assert len(kg.snapshots[0].train) + len(kg.snapshots[0].valid) + len(kg.snapshots[0].test) > 0


def write_lkge(root: Path, snapshots: list[dict[str, str]]) -> Path:
    for index, files in enumerate(snapshots):
        folder = root / str(index)
        folder.mkdir(parents=True)
        for name in ("train", "valid", "test"):
            (folder / f"{name}.txt").write_text(files.get(name, ""))
        if "removed" in files:
            (folder / "removed.txt").write_text(files["removed"])
    return root


def test_removed_txt_retracts_known_facts(tmp_path: Path) -> None:
    root = write_lkge(
        tmp_path / "data",
        [{"train": "a\tr\tb\nb\tr\tc\nc\tr\ta\n"}, {"train": "c\tr\td\n", "removed": "a\tr\tb\n"}],
    )
    kg = GrowingKG.load(root)
    assert kg.snapshots[1].report.retracted == 1
    assert kg.train_facts(1).tolist() == [[1, 0, 2], [2, 0, 0], [2, 0, 3]]
    assert kg.train_facts(0).tolist() == [[0, 0, 1], [1, 0, 2], [2, 0, 0]]  # history before the retraction
    assert kg.retracted_facts(1).tolist() == [[0, 0, 1]]


def test_bad_removals_are_errors_at_their_line_and_nothing_is_stored(tmp_path: Path) -> None:
    root = write_lkge(
        tmp_path / "data",
        [
            {"train": "a\tr\tb\nb\tr\tc\n"},
            {"train": "c\tr\td\n", "removed": "a\tr\tb\nx\tr\ty\nc\tr\td\na\tr\n"},
        ],
    )
    with pytest.raises(SnapshotError) as raised:
        GrowingKG.load(root)
    found = {(Path(p.path).name, p.line): p.reason for p in raised.value.problems}
    assert set(found) == {("removed.txt", 3), ("removed.txt", 4)}  # format and leakage first: nothing read on
    assert "also added in train.txt line 1" in found[("removed.txt", 3)]
    (root / "1" / "removed.txt").write_text("a\tr\tb\nx\tr\ty\n")
    kg = GrowingKG()
    kg.ingest(root / "0")
    with pytest.raises(SnapshotError, match=r"removed.txt:2: removed fact is not a known fact"):
        kg.ingest(root / "1")
    assert len(kg.snapshots) == 1 and len(kg.entities) == 3  # nothing of the bad snapshot was stored
    assert kg.train_facts(0).shape[0] == 2


def test_removed_txt_is_part_of_the_content_hash(tmp_path: Path) -> None:
    root = write_lkge(tmp_path / "data", [{"train": "a\tr\tb\nb\tr\tc\n"}, {"train": "c\tr\td\n"}])
    before = GrowingKG.load(root).snapshots[1].content_hash
    (root / "1" / "removed.txt").write_text("a\tr\tb\n")
    assert GrowingKG.load(root).snapshots[1].content_hash != before


def test_a_retracted_then_added_again_fact_is_counted_once(tmp_path: Path) -> None:
    root = write_lkge(
        tmp_path / "data",
        [
            {"train": "a\tr\tb\nb\tr\tc\n"},
            {"train": "c\tr\ta\n", "removed": "a\tr\tb\n"},
            {"train": "a\tr\tb\n"},
        ],
    )
    kg = GrowingKG.load(root)
    keys = [tuple(row) for row in kg.train_facts(2).tolist()]
    assert sorted(keys) == sorted(set(keys)) and (0, 0, 1) in keys
    assert kg.retracted_facts(2).shape[0] == 0 and kg.retracted_facts(1).shape[0] == 1


def test_retired_entities_keep_their_ids(tmp_path: Path) -> None:
    root = write_lkge(
        tmp_path / "data",
        [{"train": "a\tr\tb\nb\tr\tc\nc\tr\td\n"}, {"train": "d\tr\te\n", "removed": "a\tr\tb\n"}],
    )
    kg = GrowingKG.load(root)
    assert kg.retired_entities(0).tolist() == []
    assert kg.retired_entities(1).tolist() == [0]  # a: every fact retracted
    assert kg.entities.id("a") == 0 and kg.snapshots[1].num_entities == 5


def test_dump_diff_removing_an_unseen_fact_is_counted(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    root.mkdir()
    rows = facts(200)
    (root / "1.nt").write_text(nt(rows + [("http://e/new1", "http://r/0", "http://e/new2")]))
    (root / "2.nt").write_text(nt(rows))
    kg = GrowingKG.load(root)
    report = kg.snapshots[1].report
    assert report.retracted + report.unknown_removed == 1
    shutil.rmtree(root)


# ------------------------------------------------------------------------------------------------- --format


def mixed_folder(root: Path) -> Path:
    """Numbered snapshot folders *and* exports: auto-detection reads it as lkge."""
    (root / "0").mkdir(parents=True)
    for split, rows in (("train", "a\tr\tb\nb\tr\tc\n"), ("valid", "a\tr\tc\n"), ("test", "b\tr\ta\n")):
        (root / "0" / f"{split}.txt").write_text(rows)
    (root / "2026-01-01.tsv").write_text(tsv(facts(200)))
    (root / "2026-02-01.nt").write_text(nt(facts(250)))
    return root


def test_pin_format_records_a_format_the_folder_would_not_be_read_as(tmp_path: Path) -> None:
    from evergraph.kg.engine.sources import SOURCE_FILE, pin_format

    root = mixed_folder(tmp_path / "mixed")
    (root / SOURCE_FILE).write_text('{"splits": {"valid": 0.1, "test": 0.1}}')
    assert detect_format(root) == "lkge" and len(GrowingKG.load(root).snapshots) == 1
    assert pin_format(root, format="dumps") == root / SOURCE_FILE
    assert json.loads((root / SOURCE_FILE).read_text()) == {"format": "dumps", "splits": {"valid": 0.1, "test": 0.1}}
    assert len(GrowingKG.load(root).snapshots) == 2  # every reader now sees the two exports
    written = (root / SOURCE_FILE).stat().st_mtime_ns
    assert pin_format(root, format="dumps") is None and pin_format(root, format="auto") is None
    assert (root / SOURCE_FILE).stat().st_mtime_ns == written
    assert pin_format(root, format="lkge") == root / SOURCE_FILE  # the last --format given wins
    assert len(GrowingKG.load(root).snapshots) == 1


def test_pin_format_writes_nothing_when_the_folder_already_reads_that_way(dumps: Path) -> None:
    from evergraph.kg.engine.sources import SOURCE_FILE, pin_format

    assert pin_format(dumps, format="dumps") is None and not (dumps / SOURCE_FILE).exists()


@pytest.mark.parametrize(
    ("format", "folder", "reason"),
    [
        ("lkge", "dumps", "--format lkge needs snapshot folders"),
        ("dumps", "lkge", "--format dumps needs export files"),
        ("turtle", "dumps", "unknown format 'turtle'"),
        ("dumps", "missing", "dataset directory not found"),
    ],
)
def test_pin_format_refuses_a_folder_it_cannot_read_that_way(
    dumps: Path, tmp_path: Path, format: str, folder: str, reason: str
) -> None:
    from evergraph.kg.engine.sources import SOURCE_FILE, pin_format

    lkge = tmp_path / "lkge"
    (lkge / "0").mkdir(parents=True)
    root = {"dumps": dumps, "lkge": lkge, "missing": tmp_path / "nope"}[folder]
    with pytest.raises(SnapshotError) as raised:
        pin_format(root, format=format)
    assert [(p.path, p.line) for p in raised.value.problems] == [(str(root), 0)]
    assert reason in raised.value.problems[0].reason
    assert not (root / SOURCE_FILE).exists()


def test_pin_format_in_a_read_only_folder_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from evergraph.kg.engine import sources

    root = mixed_folder(tmp_path / "mixed")

    def read_only(*_: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(sources.os, "replace", read_only)
    with pytest.raises(SnapshotError) as raised:
        sources.pin_format(root, format="dumps")
    assert raised.value.problems[0].path == str(root / sources.SOURCE_FILE)
    assert "Read-only file system" in raised.value.problems[0].reason
    assert '{"format": "dumps"}' in str(raised.value) and not (root / sources.SOURCE_FILE).exists()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no partial file left behind


def test_the_cli_format_choices_are_the_source_formats() -> None:
    from evergraph.kg.engine.sources import FORMATS
    from evergraph.kg.service.cli import SOURCE_FORMATS

    assert SOURCE_FORMATS == FORMATS
