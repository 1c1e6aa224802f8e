import json

from kg.cli import main

SNAPSHOT_KEYS = {"snapshot", "epochs", "train_seconds", "eval_seconds", "peak_rss_mb", "stream", "per_test_set"}
METRIC_KEYS = {"mrr", "hits@1", "hits@3", "hits@10"}


def test_example_train_evaluate_end_to_end(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run"
    assert main(["example", "--out", str(data), "--scale", "0.5"]) == 0
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--strategy",
            "lkge",
            "--model",
            "rotate",
            "--protocol",
            "lkge-paper",
            "--device",
            "cpu",
            "--seed",
            "3",
            "--max-epochs",
            "10",
            "--dim",
            "16",
            "--upto",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lkge / rotate" in printed and "MRR T2" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["strategy"], metrics["model"], metrics["protocol"]) == ("lkge", "rotate", "lkge-paper")
    assert [s["snapshot"] for s in metrics["snapshots"]] == [0, 1, 2]
    for i, snap in enumerate(metrics["snapshots"]):
        assert SNAPSHOT_KEYS <= set(snap)
        assert set(snap["stream"]) == METRIC_KEYS
        assert [p["snapshot"] for p in snap["per_test_set"]] == list(range(i + 1))
        assert all(METRIC_KEYS <= set(p) for p in snap["per_test_set"])
        assert 0 < snap["stream"]["mrr"] <= 1 and snap["epochs"] <= 10

    assert main(["evaluate", "--run", str(out), "--protocol", "all-entities"]) == 0
    evaluated = json.loads((out / "evaluation-all-entities-snapshot-2.json").read_text())
    assert evaluated["snapshots"][0]["protocol"] == "all-entities"
    # the paper protocol restricts candidates, so it can only be easier than scoring against everything
    assert evaluated["snapshots"][0]["stream"]["mrr"] <= metrics["snapshots"][-1]["stream"]["mrr"] + 1e-9


def test_errors_are_reported_without_a_trace(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "0").mkdir(parents=True)
    (data / "0" / "train.txt").write_text("a\tr\tb\n a\tr\tc\n")
    (data / "0" / "valid.txt").write_text("")
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().out
    assert "train.txt:2" in err and "whitespace" in err and "test.txt" in err
    assert main(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
