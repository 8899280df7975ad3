"""Builds a SWE-bench-format fixture big enough to exercise the judge: ``humandelta``, a small library
that formats and parses human durations, with 600+ tests (parametrized ids with spaces, brackets,
quotes and unicode), one real bug (``format_duration(precision=n)`` truncates instead of rounding, so
``1 hour and 59 minutes`` at precision 1 reads ``1 hour``), its fix and its test patch.

The repository has a history like a real one: an earlier release (tag ``v0.1``), the base commit,
then the fix (branch ``main``, tag ``v0.2``) and an unrelated later branch. An attempt must see only
the base commit and its ancestors. Everything is generated here; nothing is downloaded.

    python -m seasoned.envs.swe.fixture_gen OUT_DIR     # writes OUT_DIR/instances.jsonl, OUT_DIR/repos/
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = "seasoned-fixtures/humandelta"
INSTANCE_ID = "seasoned-fixtures__humandelta-1"
INSTALL = "pip install --no-build-isolation --no-index -e ."
# (name, short name, size in microseconds, how many fit in the next larger unit)
UNITS = [("week", "w", 7 * 86_400_000_000, None), ("day", "d", 86_400_000_000, 7),
         ("hour", "h", 3_600_000_000, 24), ("minute", "m", 60_000_000, 60), ("second", "s", 1_000_000, 60),
         ("millisecond", "ms", 1000, 1000), ("microsecond", "us", 1, 1000)]
COUNTS = (1, 2, 3, 5, 6, 11, 23, 45, 59, 999)
COMBOS = {2: ((1, 1), (1, 2), (2, 1), (3, 5), (5, 3), (6, 11)), 3: ((1, 1, 1), (2, 3, 5), (1, 2, 3))}

UNITS_PY = '''"""Duration units, largest first: (name, short name, size in microseconds)."""

UNITS = (
    ("week", "w", 7 * 24 * 3600 * 10**6),
    ("day", "d", 24 * 3600 * 10**6),
    ("hour", "h", 3600 * 10**6),
    ("minute", "m", 60 * 10**6),
    ("second", "s", 10**6),
    ("millisecond", "ms", 1000),
    ("microsecond", "us", 1),
)
SIZES = {}
for _name, _short, _size in UNITS:
    SIZES[_name] = SIZES[_name + "s"] = SIZES[_short] = _size
SIZES["\\u00b5s"] = 1
'''

FORMAT_PY = '''"""Formatting a number of microseconds as words: ``1 hour, 2 minutes and 3 seconds``."""

from .units import UNITS


def split(microseconds):
    """Nonzero ``(count, name)`` parts, largest unit first."""
    parts = []
    for name, _short, size in UNITS:
        count, microseconds = divmod(microseconds, size)
        if count:
            parts.append((count, name))
    return parts


def join(words):
    words = list(words)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def format_duration(microseconds, precision=None):
    """Words for ``microseconds``; ``precision`` keeps that many units (the last one rounded)."""
    if not isinstance(microseconds, int) or isinstance(microseconds, bool) or microseconds < 0:
        raise ValueError(f"a duration is a non-negative number of microseconds, not {microseconds!r}")
    if precision is not None and precision < 1:
        raise ValueError("precision must be at least 1")
    if microseconds == 0:
        return "0 microseconds"
    parts = split(microseconds)
    if precision is not None:
        parts = parts[:precision]
    return join(f"{count} {name if count == 1 else name + 's'}" for count, name in parts)
'''

FORMAT_FIX = '''    parts = split(microseconds)
    if precision is not None and len(parts) > precision:
        size = next(s for name, _short, s in UNITS if name == parts[precision - 1][1])
        rounded = (microseconds + size // 2) // size * size  # half up; carries into larger units
        parts = split(rounded)[:precision]
    return join('''

PARSE_PY = r'''"""Parsing durations written as words (``2 hours and 5 minutes``) or short (``2h 5m``)."""

import re

from .units import SIZES

_PART = re.compile(r"(\d+)\s*([a-z\u00b5]+)")
_SEPARATORS = re.compile(r"\s*(?:,|\band\b)\s*|\s+")


def parse_duration(text):
    """Microseconds in ``text``; ``ValueError`` when any part of it is not a duration."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not a duration: {text!r}")
    rest = text.strip().lower()
    total, position, found = 0, 0, False
    for match in _PART.finditer(rest):
        between = rest[position:match.start()]
        if between and _SEPARATORS.fullmatch(between) is None:
            raise ValueError(f"not a duration: {text!r}")
        count, unit = match.groups()
        if unit not in SIZES:
            raise ValueError(f"unknown unit {unit!r} in {text!r}")
        total += int(count) * SIZES[unit]
        position, found = match.end(), True
    if not found or rest[position:].strip():
        raise ValueError(f"not a duration: {text!r}")
    return total
'''

INIT_PY = '''"""humandelta: durations as words, both ways."""

from .format import format_duration
from .parse import parse_duration

__all__ = ["format_duration", "parse_duration"]
__version__ = "{version}"
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "humandelta"
version = "{version}"
description = "Durations as words, both ways."
requires-python = ">=3.8"

[tool.setuptools]
packages = ["humandelta"]
'''

README = "# humandelta\n\nFormat and parse human durations: `format_duration(3_723_000_000)` is `1 hour, 2 minutes and 3 seconds`.\n"

PROBLEM = """format_duration(..., precision=n) truncates instead of rounding

```python
>>> from humandelta import format_duration
>>> format_duration(7_140_000_000, precision=1)   # 1 hour and 59 minutes
'1 hour'
```

The docstring says the last unit kept is rounded, so this should be '2 hours'. Likewise
`format_duration(90_061_000_000, precision=2)` (1 day, 1 hour, 1 minute and 1 second) is fine, but
1 day, 23 hours and 59 minutes at precision 2 gives '1 day and 23 hours' instead of '2 days'.
"""


def _words(count: int, name: str) -> str:
    return f"{count} {name if count == 1 else name + 's'}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def format_cases() -> list[tuple[int, str]]:
    """(microseconds, words) for one, two and three units: built here, independently of the library."""
    cases = []
    for unit in UNITS:
        cases += [([unit], (c,)) for c in COUNTS]
    for size in (2, 3):
        for chosen in itertools.combinations(UNITS, size):
            cases += [(list(chosen), counts) for counts in COMBOS[size]]
    out = []
    for units, counts in cases:
        if all(limit is None or c < limit for (_, _, _, limit), c in zip(units, counts)):
            value = sum(c * u[2] for u, c in zip(units, counts))
            out.append((value, _join([_words(c, u[0]) for u, c in zip(units, counts)])))
    return out


def short_cases() -> list[tuple[str, int]]:
    out = []
    for (a, b) in itertools.combinations(UNITS, 2):
        for counts in ((1, 2), (4, 3)):
            out.append((f"{counts[0]}{a[1]} {counts[1]}{b[1]}", counts[0] * a[2] + counts[1] * b[2]))
    return out + [("5 \u00b5s", 5), ("1 hour, 2 minutes", 3_720_000_000), ("2 Days", 172_800_000_000)]


INVALID = ["", "   ", "hours", "5", "5 parsecs", "5 minutes ago", "about 5 minutes", "5 minutes; 3 seconds",
           "-5 seconds", "five minutes", "1 hour [approx]", "it's 5 minutes", '"5" minutes', "5 minutes!",
           "1h,, 2m", "1 \u00e9ternit\u00e9"]
# (microseconds, precision, words) that truncating and rounding agree on: they pass before and after.
PRECISION_SAME = [(3_723_000_000, 1, "1 hour"), (3_723_000_000, 2, "1 hour and 2 minutes"),
                  (90_061_000_000, 2, "1 day and 1 hour"), (90_061_000_000, 4, "1 day, 1 hour, 1 minute and 1 second"),
                  (1_001, 1, "1 millisecond"), (604_800_000_001, 1, "1 week"), (7_200_000_000, 1, "2 hours"),
                  (61_000_000, 3, "1 minute and 1 second"), (1_500_000, 5, "1 second and 500 milliseconds"),
                  (86_400_000_000 + 1_000, 1, "1 day")]
# The bug: these need rounding (with carries into larger units).
PRECISION_ROUNDS = [(7_140_000_000, 1, "2 hours"), (5_400_000_000, 1, "2 hours"),
                    (172_740_000_000, 2, "2 days"), (1_999_999, 1, "2 seconds"),
                    (1_209_599_000_000, 2, "2 weeks"), (90_000_000, 1, "2 minutes"),
                    (3_599_999_999, 2, "1 hour"), (5_430_000_000, 2, "1 hour and 31 minutes")]


def pytest_id(text: str) -> str:
    """The id pytest gives a parameter string (non-ASCII escaped, as pytest's ``ascii_escaped``)."""
    return text.encode("unicode_escape").decode("ascii")


def _literal(rows) -> str:
    return "[\n" + "".join(f"    {row!r},\n" for row in rows) + "]"


def tests_format() -> str:
    return f'''import pytest

from humandelta import format_duration

CASES = {_literal(format_cases())}


@pytest.mark.parametrize("value, words", CASES, ids=[words for _, words in CASES])
def test_format(value, words):
    assert format_duration(value) == words


def test_zero():
    assert format_duration(0) == "0 microseconds"


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True], ids=["negative", "float", "string", "none", "bool"])
def test_format_rejects(bad):
    with pytest.raises(ValueError):
        format_duration(bad)
'''


def tests_parse() -> str:
    return f'''import pytest

from humandelta import format_duration, parse_duration
from test_format import CASES

SHORT = {_literal(short_cases())}
INVALID = {_literal(INVALID)}


@pytest.mark.parametrize("value, words", CASES, ids=[words for _, words in CASES])
def test_parse_words(value, words):
    assert parse_duration(words) == value


@pytest.mark.parametrize("text, value", SHORT, ids=[text for text, _ in SHORT])
def test_parse_short(text, value):
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", INVALID, ids=INVALID)
def test_parse_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_round_trip_of_big_values():
    for value in (10**15, 10**12 + 1, 999_999_999):
        assert parse_duration(format_duration(value)) == value
'''


def tests_precision(rows) -> str:
    return f'''import pytest

from humandelta import format_duration

CASES = {_literal(rows)}


@pytest.mark.parametrize("value, precision, words", CASES,
                         ids=[f"{{v}} at {{p}} -> {{w}}" for v, p, w in CASES])
def test_precision(value, precision, words):
    assert format_duration(value, precision=precision) == words


def test_precision_must_be_positive():
    with pytest.raises(ValueError):
        format_duration(5, precision=0)
'''


def test_ids(rows_precision) -> list[str]:
    """Node ids in the order pytest collects them (checked against a real collection in the tests)."""
    ids = [f"tests/test_format.py::test_format[{pytest_id(w)}]" for _, w in format_cases()]
    ids += ["tests/test_format.py::test_zero"]
    ids += [f"tests/test_format.py::test_format_rejects[{n}]" for n in ("negative", "float", "string", "none", "bool")]
    ids += [f"tests/test_parse.py::test_parse_words[{pytest_id(w)}]" for _, w in format_cases()]
    ids += [f"tests/test_parse.py::test_parse_short[{pytest_id(t)}]" for t, _ in short_cases()]
    ids += [f"tests/test_parse.py::test_parse_rejects[{pytest_id(t)}]" for t in INVALID]
    ids += ["tests/test_parse.py::test_round_trip_of_big_values"]
    ids += [f"tests/test_precision.py::test_precision[{v} at {p} -> {pytest_id(w)}]" for v, p, w in rows_precision]
    ids += ["tests/test_precision.py::test_precision_must_be_positive"]
    return ids


def _fix_ids() -> list[str]:
    return [f"tests/test_precision.py::test_precision[{v} at {p} -> {w}]" for v, p, w in PRECISION_ROUNDS]


def _git(cwd: Path, *args: str, date: str = "2024-01-01T00:00:00+0000") -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
           "GIT_AUTHOR_NAME": "Fixture Author", "GIT_AUTHOR_EMAIL": "author@example.com",
           "GIT_COMMITTER_NAME": "Fixture Author", "GIT_COMMITTER_EMAIL": "author@example.com",
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def build(out: str | os.PathLike) -> Path:
    """Write ``out/repos/seasoned-fixtures__humandelta/`` (a git checkout with history) and
    ``out/instances.jsonl`` (one instance, SWE-bench fields); returns the JSONL path."""
    out = Path(out)
    repo = out / "repos" / REPO.replace("/", "__")
    repo.mkdir(parents=True)
    _git(repo, "init", "-q")
    _write(repo, {"pyproject.toml": PYPROJECT.format(version="0.1.0"), "README.md": README,
                  ".gitignore": "__pycache__/\n*.egg-info/\n",
                  "humandelta/__init__.py": INIT_PY.format(version="0.1.0"), "humandelta/units.py": UNITS_PY,
                  "humandelta/format.py": FORMAT_PY, "tests/test_format.py": tests_format()})
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "humandelta 0.1: format durations", date="2024-01-01T00:00:00+0000")
    _git(repo, "tag", "v0.1")
    _write(repo, {"humandelta/parse.py": PARSE_PY, "pyproject.toml": PYPROJECT.format(version="0.2.0.dev0"),
                  "humandelta/__init__.py": INIT_PY.format(version="0.2.0.dev0"), "tests/test_parse.py": tests_parse(),
                  "tests/test_precision.py": tests_precision(PRECISION_SAME)})
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "parse_duration; precision", date="2024-02-01T00:00:00+0000")
    base = _git(repo, "rev-parse", "HEAD").strip()
    fixed = FORMAT_PY.replace("    parts = split(microseconds)\n    if precision is not None:\n"
                              "        parts = parts[:precision]\n    return join(", FORMAT_FIX)
    assert fixed != FORMAT_PY
    _write(repo, {"humandelta/format.py": fixed,
                  "tests/test_precision.py": tests_precision(PRECISION_SAME + PRECISION_ROUNDS)})
    patch = _git(repo, "diff", "HEAD", "--", "humandelta")
    test_patch = _git(repo, "diff", "HEAD", "--", "tests")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "format_duration: round the last unit kept (fixes #1)",
         date="2024-03-01T00:00:00+0000")
    _git(repo, "tag", "v0.2")
    _git(repo, "checkout", "-q", "-b", "later-work")
    _write(repo, {"NOTES.md": "later work\n"})
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "notes", date="2024-04-01T00:00:00+0000")
    _git(repo, "checkout", "-q", "main")
    record = {"repo": REPO, "instance_id": INSTANCE_ID, "base_commit": base, "patch": patch,
              "test_patch": test_patch, "problem_statement": PROBLEM, "hints_text": "",
              "created_at": "2024-03-01T00:00:00Z", "version": "0.2", "environment_setup_commit": base,
              "FAIL_TO_PASS": json.dumps(_fix_ids()),
              "PASS_TO_PASS": json.dumps(test_ids(PRECISION_SAME)), "install": INSTALL}
    path = out / "instances.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m seasoned.envs.swe.fixture_gen OUT_DIR", file=sys.stderr)
        return 2
    if Path(args[0]).exists() and any(Path(args[0]).iterdir()):
        print(f"error: {args[0]} exists and is not empty", file=sys.stderr)
        return 2
    path = build(args[0])
    print(f"wrote {path} (repositories in {path.parent / 'repos'}; use --repos {path.parent / 'repos'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
