"""seasoned-admin: every command, --json, and one-line errors that change nothing."""

from __future__ import annotations

import json
import sys

import pytest
from seasoned.memory import MemoryBank, MemoryItem
from seasoned.memory.admin import main


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    bank = MemoryBank.open(url, namespace="ops")
    ids = [bank.add(MemoryItem(kind="lesson", title="timeouts", content="HTTP calls need a timeout of 10 s.",
                               source="failure")).item.id,
           bank.add(MemoryItem(kind="strategy", title="logs", content="Read the last 50 lines of the log first.")).item.id]
    bank.close()
    return url, ids


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_read_commands_json_and_tables(db, capsys):
    url, ids = db
    code, out, _ = run(capsys, "stats", "--db", url, "--namespace", "ops", "--json")
    assert code == 0 and json.loads(out)["active"] == 2
    code, out, _ = run(capsys, "--db", url, "-n", "ops", "list", "--json")
    assert {i["id"] for i in json.loads(out)} == set(ids)
    code, out, _ = run(capsys, "list", "--db", url, "-n", "ops")
    assert code == 0 and "timeouts" in out and "lesson" in out
    code, out, _ = run(capsys, "search", "request timeout", "--db", url, "-n", "ops", "--json")
    assert json.loads(out)[0]["item"]["id"] == ids[0] and "semantic" in json.loads(out)[0]["parts"]
    code, out, _ = run(capsys, "show", ids[0], "--db", url, "-n", "ops")
    assert code == 0 and "HTTP calls need a timeout" in out
    code, out, _ = run(capsys, "list", "--db", url, "--json")  # another namespace: empty
    assert json.loads(out) == []


def test_edit_pin_history_delete(db, capsys, tmp_path, monkeypatch):
    url, ids = db
    common = ["--db", url, "-n", "ops"]
    code, out, _ = run(capsys, "edit", ids[0], "--set", "content=HTTP calls need a 5 s timeout.",
                       "--set", "tags=http,net", *common)
    assert code == 0 and "version 2" in out
    editor = tmp_path / "editor.py"
    editor.write_text("import json, sys\np = sys.argv[1]\nd = json.load(open(p))\nd['title'] = 'edited'\n"
                      "json.dump(d, open(p, 'w'))\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    code, out, _ = run(capsys, "edit", ids[0], *common)
    assert code == 0 and "version 3" in out
    assert run(capsys, "pin", ids[0], *common)[0] == 0
    code, out, _ = run(capsys, "history", ids[0], "--json", *common)
    history = json.loads(out)
    assert [h["reason"] for h in history][1:] == ["human edit", "human edit", "pinned"]
    assert history[0]["snapshot"]["content"] == "HTTP calls need a timeout of 10 s."
    code, out, _ = run(capsys, "history", ids[0], *common)
    assert "pinned" in out
    assert run(capsys, "delete", ids[1], *common)[0] == 0
    code, out, _ = run(capsys, "show", ids[1], "--json", *common)
    assert json.loads(out)["status"] == "archived"
    assert run(capsys, "delete", ids[1], "--hard", *common)[0] == 0
    code, _, err = run(capsys, "show", ids[1], *common)
    assert code == 1 and ids[1] in err


def test_export_import_reindex_prune(db, capsys, tmp_path):
    url, ids = db
    dump = tmp_path / "dump.jsonl"
    assert run(capsys, "export", str(dump), "--db", url, "-n", "ops")[0] == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = run(capsys, "import", str(dump), "--db", other, "--json")
    assert code == 0 and json.loads(out)["imported"] == 2
    code, out, _ = run(capsys, "reindex", "--db", other, "-n", "ops", "--json")
    assert json.loads(out) == {"indexed": 2}
    code, out, _ = run(capsys, "prune", "--db", other, "-n", "ops", "--stale-days", "0", "--dry-run", "--json")
    assert {p["id"] for p in json.loads(out)} == set(ids)
    code, out, _ = run(capsys, "stats", "--db", other, "-n", "ops", "--json")
    assert json.loads(out)["active"] == 2  # dry run changed nothing


@pytest.mark.parametrize("argv, fragment", [
    (["show", "no-such-id"], "no memory item"),
    (["history", "no-such-id"], "no memory item"),
    (["pin", "no-such-id"], "no memory item"),
    (["delete", "no-such-id", "--hard"], "no memory item"),
    (["edit", "no-such-id", "--set", "title=x"], "no memory item"),
    (["edit", "ID", "--set", "status=archived"], "cannot edit field"),
    (["import", "/no/such/file.jsonl"], "no such file"),
    (["export", "/no/such/dir/out.jsonl"], "does not exist"),
])
def test_errors_are_one_line_nonzero_and_change_nothing(db, capsys, argv, fragment):
    url, ids = db
    argv = [ids[0] if a == "ID" else a for a in argv]
    before = run(capsys, "export", "/dev/stdout", "--db", url, "-n", "ops")[1]
    code, _, err = run(capsys, *argv, "--db", url, "-n", "ops")
    assert code == 1 and fragment in err and len(err.strip().splitlines()) == 1
    after = run(capsys, "export", "/dev/stdout", "--db", url, "-n", "ops")[1]
    assert before == after


def test_bad_urls_are_one_line_errors(capsys, tmp_path, monkeypatch):
    for url, fragment in (("not a url", "cannot parse"), (f"sqlite:///{tmp_path}/missing/x.db", "does not exist")):
        code, _, err = run(capsys, "stats", "--db", url)
        assert code == 1 and fragment in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("SEASONED_CHROMA_URL", "ftp://nowhere")
    code, _, err = run(capsys, "stats", "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert code == 1 and "SEASONED_CHROMA_URL" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    monkeypatch.delenv("SEASONED_CHROMA_URL")
    code, _, err = run(capsys, "import", str(bad), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert code == 1 and "line 1" in err


def test_add_from_flags_and_from_a_json_line(db, capsys, monkeypatch):
    url, _ = db
    code, out, err = run(capsys, "add", "--db", url, "-n", "ops", "--json", "--content", "Retry 429s after the "
                         "Retry-After header.", "--kind", "lesson", "--title", "rate limits", "--tag", "http",
                         "--pin")
    assert code == 0, err
    added = json.loads(out)
    assert added["action"] == "ADD" and added["item"]["source"] == "human" and added["item"]["pinned"]
    assert added["item"]["tags"] == ["http"] and added["item"]["namespace"] == "ops"
    line = json.dumps({"content": "Use UTC timestamps in every log line.", "kind": "strategy", "verified": True})
    code, out, err = run(capsys, "add", "--db", url, "-n", "ops", "--json", "--json-line", line)
    assert code == 0, err
    assert json.loads(out)["item"]["verified"]
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(json.dumps({"content": "From stdin."}) + "\n"))
    assert run(capsys, "add", "--db", url, "-n", "ops", "--json-line", "-", "--no-dedup")[0] == 0
    code, out, _ = run(capsys, "list", "--db", url, "-n", "ops", "--json")
    assert len(json.loads(out)) == 5
    for argv, fragment in ((["add"], "--content"), (["add", "--json-line", "[1]"], "JSON object"),
                           (["add", "--json-line", '{"content": ""}'], "content"),
                           (["add", "--json-line", "{nope"], "not valid JSON")):
        code, _, err = run(capsys, *argv, "--db", url, "-n", "ops")
        assert code == 1 and fragment in err and len(err.strip().splitlines()) == 1


def test_unique_id_prefixes_are_accepted_everywhere(db, capsys):
    url, ids = db
    prefix = ids[0][:8]
    code, out, _ = run(capsys, "show", prefix, "--db", url, "-n", "ops", "--json")
    assert code == 0 and json.loads(out)["id"] == ids[0]
    assert run(capsys, "history", prefix, "--db", url, "-n", "ops")[0] == 0
    assert run(capsys, "edit", prefix, "--set", "title=renamed", "--db", url, "-n", "ops")[0] == 0
    assert run(capsys, "pin", prefix, "--db", url, "-n", "ops")[0] == 0
    code, out, _ = run(capsys, "pin", prefix, "--unpin", "--db", url, "-n", "ops", "--json")
    assert json.loads(out)["pinned"] is False and json.loads(out)["title"] == "renamed"
    assert run(capsys, "delete", prefix, "--db", url, "-n", "ops")[0] == 0
    code, _, err = run(capsys, "show", prefix, "--db", url, "-n", "elsewhere")  # prefixes stay in the namespace
    assert code == 1 and "no memory item" in err
    code, _, err = run(capsys, "show", "", "--db", url, "-n", "ops")
    assert code == 1


def test_an_ambiguous_prefix_names_the_matches(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'amb.db'}"
    bank = MemoryBank.open(url, namespace="ops")
    for suffix, text in (("1", "first note about caching"), ("2", "second note about queues")):
        bank.add(MemoryItem(id=f"abc{suffix}", kind="note", content=text), dedup=False)
    bank.close()
    code, _, err = run(capsys, "show", "abc", "--db", url, "-n", "ops")
    assert code == 1 and "abc1" in err and "abc2" in err and "more characters" in err


def test_import_into_another_namespace_and_hand_written_lines(db, capsys, tmp_path):
    url, ids = db
    dump = tmp_path / "dump.jsonl"
    assert run(capsys, "export", str(dump), "--db", url, "-n", "ops")[0] == 0
    code, _, err = run(capsys, "import", str(dump), "--db", url, "-n", "copy")
    assert code == 1 and "--into copy" in err  # the old refusal now says what to do
    code, out, err = run(capsys, "import", str(dump), "--db", url, "--into", "copy", "--json")
    assert code == 0, err
    assert json.loads(out)["imported"] == 2
    code, out, _ = run(capsys, "list", "--db", url, "-n", "copy", "--json")
    copied = json.loads(out)
    assert len(copied) == 2 and not {i["id"] for i in copied} & set(ids)
    assert {i["content"] for i in copied} == {"HTTP calls need a timeout of 10 s.",
                                              "Read the last 50 lines of the log first."}
    code, out, _ = run(capsys, "history", copied[0]["id"], "--db", url, "-n", "copy", "--json")
    assert json.loads(out) and all(v["item_id"] == copied[0]["id"] for v in json.loads(out))
    assert len(json.loads(run(capsys, "list", "--db", url, "-n", "ops", "--json")[1])) == 2  # source untouched
    hand = tmp_path / "hand.jsonl"
    hand.write_text(json.dumps({"item": {"content": "Pin dependency versions.", "kind": "lesson"}}) + "\n"
                    + json.dumps({"content": "A bare item line works too."}) + "\n")
    code, out, err = run(capsys, "import", str(hand), "--db", url, "--into", "hand", "--json")
    assert code == 0, err
    assert json.loads(out)["imported"] == 2
    items = json.loads(run(capsys, "list", "--db", url, "-n", "hand", "--json")[1])
    code, out, _ = run(capsys, "history", items[0]["id"], "--db", url, "-n", "hand", "--json")
    assert [v["version"] for v in json.loads(out)] == [1] and json.loads(out)[0]["reason"] == "imported"


def test_every_flag_has_help_and_states_its_default(capsys):
    from seasoned.memory.admin import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest in ("help", "namespace", "db", "json"):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help"
            if action.option_strings and action.default not in (None, False, []) and action.nargs != 0:
                assert "default" in action.help, f"{name} {action.option_strings}: default not stated"
    for command in ("search", "delete", "pin", "prune"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "default" in out


def test_the_first_embedding_in_a_fresh_home_prints_no_progress_bar(tmp_path):
    """The program (not the Python call): a fresh home loads the embedder with sentence-transformers, whose
    ``Loading weights`` bar is third-party noise; ``-v`` is how to see it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    admin = Path(sys.executable).with_name("seasoned-admin")
    env = {key: value for key, value in os.environ.items()
           if key not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE")}
    env.update(SEASONED_HOME=str(tmp_path), SEASONED_DB_URL=f"sqlite:///{tmp_path}/memory.db")
    done = subprocess.run([str(admin), "add", "--content", "retry a flaky socket call with backoff"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "Loading weights" not in done.stderr + done.stdout and "it/s" not in done.stderr


# --- issue 23 point 7: importing the same items again adds nothing ---------------------------------------
HAND_WRITTEN = [{"content": "Pin dependency versions.", "kind": "lesson"},
                {"content": "Read the last 50 lines of the log first.", "kind": "strategy"},
                {"content": "Retry a flaky socket call with backoff.", "kind": "strategy", "run_ids": ["r1"]}]


def active(url: str, namespace: str) -> list[dict]:
    with MemoryBank.open(url, namespace=namespace) as bank:
        return [item.model_dump(mode="json") for item in bank.list(limit=100)]


@pytest.mark.parametrize("mode", ["into", "namespace", "plain"])
def test_importing_hand_written_items_twice_adds_nothing(tmp_path, capsys, mode):
    url = f"sqlite:///{tmp_path / 'memory.db'}"
    hand = tmp_path / "hand.jsonl"
    hand.write_text("".join(json.dumps(line) + "\n" for line in HAND_WRITTEN))
    where = {"into": ["--into", "team"], "namespace": ["-n", "team"], "plain": ["-n", "default"]}[mode]
    namespace = where[1]
    first = json.loads(run(capsys, "import", str(hand), "--db", url, *where, "--json")[1])
    assert first == {"imported": 3, "merged": 0, "replaced": 0, "skipped": 0}
    again = json.loads(run(capsys, "import", str(hand), "--db", url, *where, "--json")[1])
    assert again == {"imported": 0, "merged": 3, "replaced": 0, "skipped": 0}
    items = active(url, namespace)
    assert sorted(i["content"] for i in items) == sorted(line["content"] for line in HAND_WRITTEN)
    reworded = tmp_path / "reworded.jsonl"  # spacing and case aside, the same content; a new run joins
    reworded.write_text(json.dumps({"content": "retry a flaky  socket call with BACKOFF.", "kind": "strategy",
                                    "run_ids": ["r2"]}) + "\n")
    assert json.loads(run(capsys, "import", str(reworded), "--db", url, *where, "--json")[1])["merged"] == 1
    items = active(url, namespace)
    assert len(items) == 3
    assert next(i for i in items if i["content"].startswith("Retry"))["run_ids"] == ["r1", "r2"]


def test_importing_an_export_into_a_namespace_twice_adds_nothing(db, capsys, tmp_path):
    url, _ = db
    with MemoryBank.open(url, namespace="ops") as bank:  # a demonstration (keyed) and two allocation records
        bank.put("demo:abc", MemoryItem(kind="demonstration", content="2 + 3 = 5. Answer: 5", verified=True,
                                        data={"task": "What is 2 + 3?", "reply": "Answer: 5"}))
        for run_id in ("r1", "r2"):  # the same text from two runs: two records, both kept
            bank.record_allocation("general", budget={}, spent={"tokens": 30}, success=False, run_id=run_id)
    dump = tmp_path / "dump.jsonl"
    assert run(capsys, "export", str(dump), "--db", url, "-n", "ops")[0] == 0
    for attempt in range(2):
        code, out, err = run(capsys, "import", str(dump), "--db", url, "--into", "copy", "--json")
        assert code == 0, err
        counts = json.loads(out)
        assert (counts["imported"], counts["merged"]) == ((5, 0) if attempt == 0 else (0, 5))
    copied = active(url, "copy")
    assert len(copied) == 5 and sum(i["kind"] == "allocation" for i in copied) == 2
    assert not any(i["verified"] for i in copied)  # a file's flag is not a check made here
    code, out, _ = run(capsys, "import", str(dump), "--db", url, "-n", "ops", "--json")  # its own ids: skipped
    assert json.loads(out)["skipped"] == 5 and len(active(url, "ops")) == 5
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    twice = tmp_path / "twice.jsonl"  # one file naming an item twice under two ids
    clone = json.loads(json.dumps(lines[0]))
    clone["item"]["id"] = "clone1"
    for version in clone["versions"]:
        version["item_id"] = "clone1"
    twice.write_text(json.dumps(lines[0]) + "\n" + json.dumps(clone) + "\n")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    counts = json.loads(run(capsys, "import", str(twice), "--db", other, "-n", "ops", "--json")[1])
    assert (counts["imported"], counts["merged"]) == (1, 1) and len(active(other, "ops")) == 1
