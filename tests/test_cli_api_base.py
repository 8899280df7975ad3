"""`--api-base/--api-key` on chat, run and bench reach a real OpenAI-compatible server over HTTP (here
`seasoned serve` with a scripted model behind it), with no environment variable set."""

import json

import pytest
from seasoned.models import scripted
from test_cli import seasoned

KEY = "sk-test-key"


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An OpenAI-compatible server on loopback that answers every question with 42 and counts requests;
    the provider variables a user might have set are cleared, so only the flags can reach it."""
    from seasoned.server import BackgroundServer, ServerSettings, create_app

    for name in ("OPENAI_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    monkeypatch.setenv("SEASONED_DB_URL", f"sqlite:///{tmp_path}/cli.db")
    asked = []

    def reply(messages, params):
        asked.append(messages[-1]["content"])
        return "Adding them gives 42.\nAnswer: 42"

    scripted.register("behind-server", fn=reply)
    settings = ServerSettings(model="scripted/behind-server", db_url=f"sqlite:///{tmp_path}/server.db",
                              chroma_path=str(tmp_path / "chroma"), strategy="single")
    with BackgroundServer(create_app(settings)) as url:
        yield f"{url}/v1", asked


def test_chat_reaches_the_server_given_by_flags(server, monkeypatch, capsys):
    base, asked = server
    code, out, err = seasoned(monkeypatch, capsys, "chat", "What is 40 + 2?", "-m", "openai/scripted/behind-server",
                              "--api-base", base, "--api-key", KEY, "--json")
    assert code == 0, err
    assert json.loads(out)["reply"].endswith("Answer: 42")
    assert len(asked) == 1 and asked[0].startswith("What is 40 + 2?")  # the server ran the question


def test_run_reaches_the_server_given_by_flags(server, monkeypatch, capsys):
    base, asked = server
    code, out, err = seasoned(monkeypatch, capsys, "run", "What is 40 + 2?", "-m", "openai/scripted/behind-server",
                              "--api-base", base, "--api-key", KEY, "--strategy", "single", "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["answer"] == "42" and asked


def test_without_the_flags_no_key_is_one_clear_error(server, monkeypatch, capsys):
    _, asked = server
    code, _, err = seasoned(monkeypatch, capsys, "chat", "What is 40 + 2?", "-m", "openai/scripted/behind-server")
    assert code == 2 and "Traceback" not in err and err.strip()
    assert asked == []


def test_bench_reaches_the_server_given_by_flags(server, tmp_path, monkeypatch, capsys):
    base, asked = server
    out_dir = tmp_path / "bench"
    code, _, err = seasoned(monkeypatch, capsys, "bench", "--env", "addition", "--strategy", "single", "--n", "2",
                            "-m", "openai/scripted/behind-server", "--api-base", base, "--api-key", KEY,
                            "--out", str(out_dir))
    assert code == 0, err
    rows = [json.loads(line) for line in (out_dir / "per-task.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(row["calls"] >= 1 for row in rows) and len(asked) >= 2
    assert KEY not in "".join(path.read_text() for path in out_dir.glob("*.json*"))  # the key is not kept
