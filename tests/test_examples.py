"""Every example in examples/ runs as written, with the scripted provider playing the model
(``SEASONED_MODEL=scripted/example``), and the README's code blocks are the examples' code."""

import re
import runpy
from pathlib import Path

import pytest
from seasoned.models import scripted

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def run_example(tmp_path, monkeypatch, capsys):
    """Runs ``examples/NAME.py`` as ``__main__`` with a scripted model; returns what it printed."""
    monkeypatch.setenv("SEASONED_MODEL", "scripted/example")
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    monkeypatch.setenv("SEASONED_DB_URL", f"sqlite:///{tmp_path}/seasoned.db")

    def run(name: str, reply, argv: list[str] | None = None) -> str:
        scripted.register("example", fn=reply)
        monkeypatch.setattr("sys.argv", [str(EXAMPLES / name), *(argv or [])])
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return capsys.readouterr().out

    return run


def test_custom_checker_and_tools(run_example):
    def shopkeeper(messages, params):
        seen = messages[-1]["content"]
        if "Observation:\n1.5" in seen:
            return "```action\nanswer 1.5\n```"
        if "Observation:\n0.5" in seen:
            return "```action\nmultiply 0.5 3\n```"
        return "```action\nprice apple\n```"

    out = run_example("custom_checker_and_tools.py", shopkeeper)
    assert "answer: '1.5'  verified: True" in out
    assert "price(fruit='apple') -> 0.5" in out and "multiply(a=0.5, b=3.0) -> 1.5" in out


@pytest.mark.parametrize("reply", ["40 plus 2.\nAnswer: 42", "40 plus 2.\nAnswer: 42.", "40 + 2 = 42"])
def test_langgraph_subgraph(run_example, tmp_path, reply):
    from seasoned.runs import RunStore

    out = run_example("langgraph_subgraph.py", lambda messages, params: reply)
    assert re.search(r"What is 40 \+ 2\? = 42\.? \(verified: True\)", out)
    run_id = re.search(r"run recorded: seasoned runs show ([0-9a-f]{16})", out).group(1)
    assert re.search(r"notes in the bank: [1-9]", out)
    with RunStore.open(f"sqlite:///{tmp_path}/seasoned.db") as store:  # where `seasoned runs show` looks
        record = store.get_run(run_id).run
    assert record.id == run_id and record.status == "completed"
    assert record.answer in ("42", "42.") and record.verified  # the answer as written, verified either way


def test_embed_in_fastapi_learns_in_its_own_memory(run_example, tmp_path):
    out = run_example("embed_in_fastapi.py", lambda messages, params: "6 times 7.\nAnswer: 42")
    first = re.search(r"^ask: .*'verified': True, .*'tokens': (\d+), 'from_memory': False}$", out, re.MULTILINE)
    assert first and "'answer': '42'" in first.group() and int(first.group(1)) > 0
    learned = re.search(r"^learned: \{'items': (\d+), 'by_kind': (.*), 'verified': \d+\}$", out, re.MULTILINE)
    assert learned and int(learned.group(1)) >= 2 and "'demonstration': 1" in learned.group(2)
    assert re.search(r"^ask again: \{'answer': '42', 'verified': True, .*'tokens': 0, 'from_memory': True}$", out,
                     re.MULTILINE)  # answered from what the first ask taught it, checked again, no model call
    assert "feedback: {'run_id':" in out and "'success': True" in out
    from seasoned.memory import MemoryBank

    with MemoryBank.open(f"sqlite:///{tmp_path}/seasoned.db", namespace="my-app") as bank:  # where the app kept it
        assert any(item.kind == "demonstration" for item in bank.list(limit=50))


def test_openai_client_against_seasoned_serve(run_example, tmp_path, monkeypatch):
    from seasoned.agents import verifier
    from seasoned.server import BackgroundServer, ServerSettings, create_app

    def reply(messages, params):
        if messages[0]["content"] == verifier.SYSTEM:
            return '{"correct": true, "score": 0.9, "reason": "checks out"}'
        return "17 plus 25 is 42.\nAnswer: 42"

    scripted.register("example", fn=reply)
    settings = ServerSettings(model="scripted/example", db_url=f"sqlite:///{tmp_path}/server.db",
                              chroma_path=str(tmp_path / "chroma"))
    with BackgroundServer(create_app(settings)) as url:
        monkeypatch.setenv("SEASONED_URL", url)
        out = run_example("openai_client.py", reply)
    assert "reply: '17 plus 25 is 42.\\nAnswer: 42'" in out
    assert re.search(r"run [0-9a-f]+: verified=(True|False) tokens=[1-9]", out)
    assert "streamed: " in out and "feedback: 200" in out


def test_python_api(run_example):
    out = run_example("python_api.py", lambda messages, params: "Adding them.\nAnswer: 42")
    lines = out.splitlines()
    assert lines[0].startswith("42 True ") and "'solver':" in lines[0]
    assert re.fullmatch(r"\S+ -> (True|False)", lines[1])
    assert re.match(r"42 \d+ subtask\(s\), \d+ verified", lines[2])
    assert lines[3].startswith("True 42 {")  # resumed under its own id; the memory it was given


def test_gateway(run_example):
    out = run_example("gateway.py", lambda messages, params: "17 plus 25.\nAnswer: 42")
    assert "reply: '17 plus 25.\\nAnswer: 42'" in out and "a sample says 42" in out
    calls, tokens = re.search(r"calls: (\d+)  tokens: (\d+)", out).groups()
    assert 2 <= int(calls) <= 9 and int(tokens) > 0


def test_swe_dataset(run_example):
    def actor(messages, params):  # looks at the tree, then submits no change: the tests must fail
        return "```action\nsubmit\n```" if len(messages) > 2 else "```action\nview .\n```"

    out = run_example("swe_dataset.py", actor)
    assert "turn 1: view(path='.')" in out and "turn 2: submit() -> submitted (no changes)" in out
    assert re.search(r"tests: passed=False failing=\['tests/\S+::test_\w+", out)
    assert re.search(r"resolved=False tokens=[1-9]", out)


def console_commands(markdown: str) -> list[str]:
    """The ``$ ...`` lines of the ```console blocks, in order."""
    blocks = re.findall(r"```console\n(.*?)```", markdown, re.DOTALL)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def _addition_model(messages, params):
    """Right on one-digit sums, one off on bigger ones: the walk's bank gets successes and failures."""
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)\?", messages[-1]["content"])[-1])
    total = a + b if a + b < 100 else a + b + 1
    return f"{a} + {b} = {total}.\nAnswer: {total}"


def test_memory_admin_walkthrough_does_what_it_says(tmp_path, monkeypatch, capsys):
    """Every command of examples/memory_admin.md, in order, on a fresh home; each output is what the text
    says it is (issue 23 point 4: step 1 stored nothing, so the walk ran on an empty bank)."""
    import json
    import shlex

    from seasoned import cli
    from seasoned.memory import admin

    scripted.register("example", fn=_addition_model)
    for key, value in {"SEASONED_MODEL": "scripted/example", "SEASONED_HOME": str(tmp_path),
                       "SEASONED_DB_URL": f"sqlite:///{tmp_path}/seasoned.db", "COLUMNS": "200"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    markdown = (EXAMPLES / "memory_admin.md").read_text()

    def run(command: str) -> str:
        program, *args = shlex.split(command)
        if program == "seasoned":
            monkeypatch.setattr("sys.argv", [program, *args])
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code or 0
        else:
            assert program == "seasoned-admin", command
            code = admin.main(args)
        captured = capsys.readouterr()
        assert code == 0, f"{command}: {captured.err}"
        return captured.out

    outputs = [run(command) for command in console_commands(markdown)]
    assert len(outputs) == 11
    out = iter(outputs)
    assert "1/3 verified" in next(out)  # 1. one success, two failures
    stats = next(out)
    assert all(kind in stats for kind in ("strategy", "demonstration", "lesson", "allocation"))
    assert re.search(r"active\s+│\s+7\b", stats) and re.search(r"verified\s+│\s+3\b", stats)
    listed = next(out)
    assert "7 item(s) · namespace demo" in listed and listed.count("verified") == 3
    (demo,) = json.loads(next(out))
    assert demo["kind"] == "demonstration" and demo["verified"] and "What is 1 + 6?" in demo["data"]["task"]
    found = next(out)
    assert "search: adding two numbers" in found and 1 <= sum(line.startswith("│") for line in found.splitlines()) <= 3
    assert "would archive 0 item(s)" in next(out)  # 4. nothing failed often enough, nothing is stale yet
    assert "indexed 7 row(s)" in next(out)
    assert "exported 7 item(s) to demo-memory.jsonl" in next(out)  # 5.
    assert "imported 0, merged 0, replaced 0, skipped 7" in next(out)
    assert "imported 7, merged 0" in next(out)
    assert "imported 0, merged 7" in next(out)
    copies = json.loads(run("seasoned-admin -n demo-copy list --json"))
    assert len(copies) == 7 and not any(item["verified"] for item in copies)

    # 3. the text block's commands, on the demonstration (an 8-character prefix of its id)
    block = re.search(r"## 3\..*?```text\n(.*?)```", markdown, re.DOTALL).group(1)
    commands = [line.split("  #")[0].replace("ID", demo["id"][:8]) for line in block.splitlines() if line]
    assert [shlex.split(c)[3] for c in commands] == ["edit", "pin", "delete"]
    for command in commands:
        run(command)
    shown = json.loads(run(f"seasoned-admin -n demo show {demo['id'][:8]} --json"))
    assert shown["content"] == "Add the ones, then the tens." and shown["pinned"] and shown["status"] == "archived"
    history = json.loads(run(f"seasoned-admin -n demo history {demo['id'][:8]} --json"))
    assert [(v["reason"], v["actor"]) for v in history][-3:] == [("clearer", "human"), ("pinned", "human"),
                                                                  ("deleted (archived)", "human")]


def readme_blocks(markdown: str) -> list[tuple[str, str]]:
    """``(example path, code)`` for each ```python block of the README whose first line is
    ``# examples/NAME.py``: such a block is that example's code (all of it, or a contiguous part)."""
    found = []
    for block in re.findall(r"```python\n(.*?)```", markdown, re.DOTALL):
        first, _, rest = block.partition("\n")
        marker = re.fullmatch(r"#\s*(examples/[\w-]+\.py)\s*", first)
        if marker:
            found.append((marker.group(1), rest))
    return found


def test_readme_snippets_are_the_examples_code():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:  # a block without the marker would be code nothing runs
        text = page.read_text()
        assert len(readme_blocks(text)) == len(re.findall(r"```python\n", text)), \
            f"{page.name}: every python block starts with '# examples/NAME.py'"
    blocks = [block for page in pages for block in readme_blocks(page.read_text())]
    assert len({path for path, _ in blocks}) >= 5  # docs/embedding.md shows every Python example
    for path, code in blocks:
        assert (ROOT / path).is_file(), f"README names {path}, which does not exist"
        source = (ROOT / path).read_text()
        assert code.strip() in source, f"README's block for {path} is not the example's code"


def test_readme_check_catches_a_drifted_snippet():
    original = (EXAMPLES / "embed_in_fastapi.py").read_text()
    part = original[original.index("@app.post(\"/ask\")"):original.index("@app.post(\"/feedback\")")]
    readme = f"text\n```python\n# examples/embed_in_fastapi.py\n{part}```\n"
    assert readme_blocks(readme) == [("examples/embed_in_fastapi.py", part)] and part.strip() in original
    drifted = part.replace("arun", "run")
    assert drifted.strip() not in original
