"""Import and export of preference pairs: formats, idempotency, atomicity, and the HH round trip."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, func, select

from app.db import session_scope
from app.models import Comparison, Label, Task
from app.services.labels.data_io import export_pairs, import_file
from reward_models.pairs import read_pairs


def _count(engine, model) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


@pytest.mark.both_databases
def test_hh_round_trip(engine, hh_path, tmp_path, run_cli):
    """1,500 HH pairs: import, export (byte-identical), re-import adds nothing, contents equal."""
    first = json.loads(run_cli("data", "import", hh_path, "--json").stdout)
    assert first["added"] == 1500 and first["formats"] == {"hh": 1500}
    out = tmp_path / "export.jsonl"
    assert json.loads(run_cli("data", "export", out, "--json").stdout)["written"] == 1500
    assert out.read_bytes() == hh_path.read_bytes()
    again = json.loads(run_cli("data", "import", out, "--json").stdout)
    assert again["added"] == 0 and again["existing"] == 1500
    assert _count(engine, Comparison) == 1500 and _count(engine, Label) == 1500
    assert read_pairs(out) == read_pairs(hh_path)


def test_three_formats_and_conversion(engine, tmp_path):
    src = tmp_path / "mixed.jsonl"
    lines = [
        {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven."},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
         "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]},
        {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]},
        {"chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Simmer it for 9 minutes.",
         "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: Microwave it."},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    with session_scope(engine) as s:
        report = import_file(s, src)
    assert report.added == 4 and report.formats == {"prompt": 1, "conversational": 2, "hh": 1}
    with Session(engine) as s:
        pairs = list(export_pairs(s))
    assert [p.chosen for p in pairs] == ["Blue.", "4", "Hello!", "Simmer it for 9 minutes."]
    assert pairs[1].prompt[0].role == "system" and pairs[3].prompt_text() == "How do I boil an egg?"
    conv = tmp_path / "conv.jsonl"
    from app.services.labels.data_io import export_file

    with Session(engine) as s:
        assert export_file(s, conv, fmt="conversational") == 4
    assert all(isinstance(json.loads(x)["prompt"], list) for x in conv.read_text().splitlines())


def test_malformed_line_writes_nothing(engine, tmp_path, run_cli):
    src = tmp_path / "bad.jsonl"
    src.write_text(
        json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n"
        + json.dumps({"prompt": "a2", "chosen": "b2", "rejected": "c2"}) + "\n"
        + '{"prompt": "x", "chosen": "y"}\n'
        + "not json\n"
    )
    result = run_cli("data", "import", src)
    assert result.exit_code == 2 and "line 3" in result.stderr and "nothing was imported" in result.stderr
    assert _count(engine, Comparison) == 0 and _count(engine, Task) == 0
    partial = json.loads(run_cli("data", "import", src, "--skip-invalid", "--json").stdout)
    assert partial["added"] == 2 and [e["line"] for e in partial["invalid"]] == [3, 4]
    assert _count(engine, Comparison) == 2


@pytest.mark.parametrize("record,needle", [
    ({"chosen": "a", "rejected": "b"}, "HH transcripts"),
    ({"prompt": "p", "chosen": ["x"], "rejected": "y"}, "both be strings"),
    ({"prompt": [{"role": "robot", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
      "rejected": [{"role": "assistant", "content": "b"}]}, "unknown role"),
    ({"prompt": "p", "chosen": "  ", "rejected": "y"}, "empty"),
    ([1, 2], "JSON object"),
])
def test_error_messages_name_the_problem(engine, tmp_path, record, needle):
    from app.errors import InvalidInput

    src = tmp_path / "one.jsonl"
    src.write_text(json.dumps(record) + "\n")
    with pytest.raises(InvalidInput, match=needle), session_scope(engine) as s:
        import_file(s, src)


def test_api_import_is_atomic_and_idempotent(client, auth, engine):
    headers = auth("annotator")
    good = {"prompt": "p", "chosen": "c", "rejected": "r"}
    bad = client.post("/v1/pairs", json={"source": "api", "pairs": [good, {"prompt": "p"}]}, headers=headers)
    assert bad.status_code == 422 and "pairs[1]" in bad.json()["error"]["message"]
    assert _count(engine, Comparison) == 0
    assert client.post("/v1/pairs", json={"source": "api", "pairs": [good]}, headers=headers).json()["added"] == 1
    assert client.post("/v1/pairs", json={"source": "api", "pairs": [good]}, headers=headers).json()["existing"] == 1
    exported = client.get("/v1/pairs", headers=auth("annotator"), params={"format": "conversational"}).json()
    assert exported == [{"prompt": [{"role": "user", "content": "p"}], "chosen": [{"role": "assistant", "content": "c"}],
                         "rejected": [{"role": "assistant", "content": "r"}]}]
