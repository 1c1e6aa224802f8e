import json
from pathlib import Path

import pytest

from evergraph.kg.knowledge.knowledge import Knowledge
from evergraph.kg.service.cli import main
from evergraph.kg.store.home import EvergraphHome
from tests.conftest import born_person
from tests.fake_openai import FakeOpenAI

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


# -- the knowledge commands: guide and ask ------------------------------------------------------------------------

LLM_ENV = ("EVERGRAPH_LLM_BASE_URL", "EVERGRAPH_LLM_MODEL", "EVERGRAPH_LLM_API_KEY_ENV", "EVERGRAPH_LLM_TIMEOUT")


@pytest.fixture
def no_llm(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def champion(champion_bundle: Path) -> Knowledge:
    return Knowledge.load(champion_bundle)


@pytest.fixture(scope="module")
def born_question(champion: Knowledge) -> str:
    """A question about a person whose birthplace the graph knows."""
    return f"Where was {born_person(champion.bundle)} born?"


def test_guide_prints_the_cited_context(
    knowledge_home_template: EvergraphHome,
    born_question: str,
    champion: Knowledge,
    no_llm: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["guide", born_question, "--home", str(knowledge_home_template.root)]) == 0
    printed = capsys.readouterr().out
    expected = champion.guide(born_question)
    assert "model version 2, snapshot 1" in printed and "[1]" in printed and "abstained" not in printed
    assert expected.entities[0].name in printed and expected.facts[0].text in printed


def test_guide_json(
    knowledge_home_template: EvergraphHome,
    born_question: str,
    champion: Knowledge,
    no_llm: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["guide", born_question, "--home", str(knowledge_home_template.root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == champion.guide(born_question).model_dump(mode="json")
    assert result["facts"] and result["version"] == "2" and not result["abstained"]


def test_ask_abstains_without_an_llm(
    knowledge_home_template: EvergraphHome, no_llm: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "Who is Zorblax Quintaine?", "--home", str(knowledge_home_template.root)])
    printed = capsys.readouterr().out
    assert code == 0 and "abstained" in printed and "no LLM call" in printed


def test_ask_an_answerable_question_without_an_llm_says_what_to_set(
    knowledge_home_template: EvergraphHome,
    born_question: str,
    no_llm: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ask", born_question, "--home", str(knowledge_home_template.root)]) == 2
    assert "EVERGRAPH_LLM_BASE_URL" in capsys.readouterr().out


def test_ask_prints_the_answer_and_the_cited_facts(
    knowledge_home_template: EvergraphHome,
    born_question: str,
    champion: Knowledge,
    fake_openai: FakeOpenAI,
    no_llm: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    no_llm.setenv("EVERGRAPH_LLM_API_KEY_ENV", "")
    fake_openai.reply = lambda messages: "Somewhere [2]."
    args = ["ask", born_question, "--home", str(knowledge_home_template.root)]
    code = main([*args, "--llm-base-url", fake_openai.base_url, "--llm-model", "m"])
    printed = capsys.readouterr().out
    assert code == 0 and len(fake_openai.requests) == 1
    assert fake_openai.requests[0].json["model"] == "m" and "authorization" not in fake_openai.requests[0].headers
    cited = champion.guide(born_question).facts[1]
    assert "Somewhere [2]." in printed and f"[2] {cited.text} ({cited.kind})" in printed
    assert "[1] " not in printed and "abstained" not in printed


def test_token_env_must_be_set(no_llm: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    no_llm.delenv("UNSET_VAR", raising=False)
    for command in ("guide", "ask"):
        code = main([command, "Where is Paris?", "--url", "http://127.0.0.1:9", "--token-env", "UNSET_VAR"])
        assert code == 2 and "UNSET_VAR" in capsys.readouterr().out
    code = main(["guide", "Where is Paris?", "--url", "http://127.0.0.1:9", "--hops", "2"])
    assert code == 2 and "--hops" in capsys.readouterr().out
