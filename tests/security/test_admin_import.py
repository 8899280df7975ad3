"""seasoned-admin import checks the whole file, then writes it in one transaction; a read-only home still
serves the read-only commands (issue 14)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from seasoned.memory import MemoryBank, MemoryItem
from seasoned.memory.admin import main
from seasoned.memory.db import ItemRow, NamespaceRow, VersionRow
from sqlalchemy import func, select


@pytest.fixture
def exported(tmp_path):
    """A bank with two items in ``ops``, exported to a JSONL file, and an empty target bank."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with MemoryBank.open(source, namespace="ops") as bank:
        bank.add(MemoryItem(kind="lesson", title="timeouts", content="HTTP calls need a timeout of 10 s."))
        bank.add(MemoryItem(kind="strategy", title="logs", content="Read the last 50 lines of the log first."))
        bank.export_jsonl(tmp_path / "items.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    return {"target": f"sqlite:///{tmp_path / 'target.db'}", "lines": lines, "dir": tmp_path}


def contents(url: str) -> tuple[list[str], int, int]:
    """Namespace rows, item rows and version rows of a bank."""
    with MemoryBank.open(url) as bank, bank.db.read() as s:
        return (sorted(s.scalars(select(NamespaceRow.namespace))),
                s.scalar(select(func.count()).select_from(ItemRow)),
                s.scalar(select(func.count()).select_from(VersionRow)))


def write(path: Path, records: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def import_(capsys, url: str, path: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["import", str(path), "--db", url, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def bad(lines: list, where: int, change) -> list:
    copy = json.loads(json.dumps(lines))
    change(copy[where])
    return copy


CASES = {
    "duplicate versions": (lambda r: r["versions"].append(dict(r["versions"][0])), "appears twice"),
    "NaN utility": (None, "NaN is not a JSON number"),
    "utility above 1": (lambda r: r["item"].update(utility=7), "item.utility"),
    "control character in namespace": (lambda r: r["item"].update(namespace="ops\x00x"), "not a valid namespace"),
    "line separator in namespace": (lambda r: r["item"].update(namespace="ops\u2028x"), "not a valid namespace"),
    "escape sequence in namespace": (lambda r: r["item"].update(namespace="\x1b[31mred"), "not a valid namespace"),
    "1000-character id": (lambda r: r["item"].update(id="a" * 1000), "not a valid id"),
    "id with a slash": (lambda r: r["item"].update(id="../x"), "not a valid id"),
    "version of another item": (lambda r: r["versions"][0].update(item_id="someoneelse"), "not this item's id"),
    "negative counter": (lambda r: r["item"].update(times_failed=-1), "times_failed"),
    "lone surrogate": (None, "surrogate"),
    "deeply nested data": (lambda r: r["item"].update(data=json.loads("[" * 200 + "]" * 200)), "nested"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_file_writes_nothing_not_even_namespaces(exported, capsys, case):
    change, message = CASES[case]
    lines: list = exported["lines"]
    if case == "NaN utility":
        lines = [json.dumps(lines[0]), json.dumps(lines[1]).replace('"utility": 0.5', '"utility": NaN')]
    elif case == "lone surrogate":
        lines = [json.dumps(lines[0]), json.dumps(lines[1]).replace('"logs"', '"\\ud800logs"')]
    else:
        lines = [json.dumps(lines[0]), json.dumps(bad(lines, 1, change)[1])]
    path = write(exported["dir"] / "bad.jsonl", lines)
    before = contents(exported["target"])
    code, out, err = import_(capsys, exported["target"], path, "--namespace", "fresh")
    assert code == 1 and out == ""
    assert err.startswith("seasoned-admin: error: import: bad.jsonl line 2: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert contents(exported["target"]) == before  # no namespace row 'fresh', no item, no version


def test_an_id_owned_by_another_namespace_refuses_the_whole_file(exported, capsys):
    path = write(exported["dir"] / "items.jsonl", exported["lines"])
    assert import_(capsys, exported["target"], path, "--namespace", "first")[0] == 0
    before = contents(exported["target"])
    code, _, err = import_(capsys, exported["target"], path, "--namespace", "second")
    assert code == 1 and "already exists in namespace 'first'" in err
    assert contents(exported["target"]) == before and "second" not in before[0]


def test_a_key_used_twice_is_refused(exported, capsys):
    first, second = json.loads(json.dumps(exported["lines"]))
    first["item"]["key"] = second["item"]["key"] = "same-key"
    code, _, err = import_(capsys, exported["target"], write(exported["dir"] / "keys.jsonl", [first, second]))
    assert code == 1 and "used twice" in err and contents(exported["target"])[1] == 0


def test_a_good_file_round_trips(exported, capsys):
    code, out, _ = import_(capsys, exported["target"], write(exported["dir"] / "ok.jsonl", exported["lines"]))
    assert code == 0 and "imported 2" in out
    namespaces, items, versions = contents(exported["target"])
    assert "ops" in namespaces and items == 2 and versions == 2


def test_namespace_option_is_checked_too(exported, capsys):
    path = write(exported["dir"] / "ok.jsonl", exported["lines"])
    code, _, err = import_(capsys, exported["target"], path, "--namespace", "bad\tname")
    assert code == 1 and "namespace" in err and contents(exported["target"])[1] == 0


# --- read-only SEASONED_HOME ---------------------------------------------------------------------------
BWRAP = shutil.which("bwrap")


def _bwrap_works(folder: Path) -> bool:
    if not BWRAP:
        return False
    probe = subprocess.run([BWRAP, "--dev-bind", "/", "/", "--ro-bind", str(folder), str(folder), "--",
                            "sh", "-c", f"! touch {folder}/probe 2>/dev/null"], capture_output=True, check=False)
    return probe.returncode == 0


def test_a_read_only_home_still_serves_the_read_commands(tmp_path):
    """The home is mounted read-only with bubblewrap (a real EROFS, even for root)."""
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'memory.db'}"
    with MemoryBank.open(url, namespace="ops") as bank:
        item = bank.add(MemoryItem(kind="lesson", title="timeouts", content="HTTP calls need a timeout of 10 s.")).item
    if not _bwrap_works(home):
        pytest.skip("bubblewrap cannot mount read-only here (CI installs it: scripts/install-system-deps.sh)")
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in home.rglob("*"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "SEASONED_HOME": str(home)}

    def admin(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([BWRAP, "--dev-bind", "/", "/", "--ro-bind", str(home), str(home), "--",
                               sys.executable, "-m", "seasoned.memory", *args, "--db", url, "-n", "ops"],
                              capture_output=True, text=True, env=env, timeout=600, check=False)

    stats = admin("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["active"] == 1 and "read-only" in stats.stderr
    listed = admin("list", "--json")
    assert [i["id"] for i in json.loads(listed.stdout)] == [item.id]
    found = admin("search", "request timeout", "--json")
    assert found.returncode == 0 and json.loads(found.stdout)[0]["item"]["id"] == item.id, found.stderr
    assert item.id in admin("show", item.id, "--json").stdout
    exported = admin("export", str(out_dir / "dump.jsonl"))
    assert exported.returncode == 0 and len((out_dir / "dump.jsonl").read_text().splitlines()) == 1
    refused = admin("pin", item.id)
    assert refused.returncode == 1 and refused.stderr.startswith("seasoned-admin: error:")
    assert "Traceback" not in refused.stderr
    assert sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in home.rglob("*")) == before


def test_edit_data_is_parsed_with_a_depth_limit():
    from seasoned.memory.admin import _parse_set
    from seasoned.errors import InvalidItemError

    for value in ("[" * 100_000, '{"a": NaN}', '{"a": ' * 5000):
        with pytest.raises(InvalidItemError, match="not valid JSON"):
            _parse_set([f"data={value}"])
    assert _parse_set(['data={"a": [1]}']) == {"data": {"a": [1]}}
