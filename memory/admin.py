"""``seasoned-admin``: inspect and curate the memory bank by hand.

    seasoned-admin stats | list | search QUERY | show ID | history ID | edit ID [--set field=value ...]
                   add (--content TEXT [--kind K --title T --tag X ...] | --json-line LINE | --json-line -)
                   pin ID [--unpin] | delete ID [--hard] | export FILE | import FILE [--into NS] | reindex | prune
                   train [--model local/M --scope S --max-seconds N] | adapters list|show|export|delete
    common options: --namespace NS  --db URL  --json

An ID may be any prefix of an item's id that is unique in the namespace (what tables show is enough).

Errors (bad id, file, URL) print one line on stderr and exit with status 1; nothing is changed.
``import`` checks the whole file first (ids, namespaces, numbers, versions: see ``memory/transfer.py``) and
writes it in one transaction; its items are stored unverified, and the same items imported again add nothing.
On a read-only SEASONED_HOME the read-only commands (stats, list, search, show, history, export) still work:
the bank is opened without writing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from seasoned.errors import InvalidItemError
from seasoned.models import untrusted
from seasoned.settings import quiet_third_party

from .items import EDITABLE_FIELDS, KINDS, MemoryItem


def _common(defaults: bool) -> argparse.ArgumentParser:
    """The shared options, accepted before or after the command (after: no default, so no override)."""
    common = argparse.ArgumentParser(add_help=False)
    kw = {} if defaults else {"default": argparse.SUPPRESS}
    common.add_argument("--namespace", "-n", help="namespace (default: 'default')", **({"default": None} | kw))
    common.add_argument("--db", metavar="URL", help="SQLAlchemy URL (default: SEASONED_DB_URL or SQLite under "
                        "SEASONED_HOME)", **({"default": None} | kw))
    common.add_argument("--json", action="store_true", help="machine-readable output", **kw)
    common.add_argument("--verbose", "-v", action="store_true",
                        help="show third-party progress bars and warnings (default: hidden)", **kw)
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seasoned-admin", description="Inspect and curate seasoned's memory bank.",
                                     epilog="An ID may be any unique prefix of an item's id.",
                                     parents=[_common(True)])
    common = _common(False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    kind_help = f"only this kind (repeatable; one of {', '.join(KINDS)}; default: every kind)"
    id_help = "the item's id, or a prefix of it unique in the namespace"
    sub.add_parser("stats", parents=[common], help="counts, utility, index state")
    p = sub.add_parser("list", parents=[common], help="list items")
    p.add_argument("--kind", action="append", choices=KINDS, metavar="KIND", help=kind_help)
    p.add_argument("--status", default="active", choices=["active", "archived", "superseded", "all"],
                   help="which items (default: %(default)s)")
    p.add_argument("--limit", type=int, default=50, help="at most this many items (default: %(default)s)")
    p.add_argument("--offset", type=int, default=0, help="skip this many items first (default: %(default)s)")
    p = sub.add_parser("search", parents=[common], help="hybrid search")
    p.add_argument("query", help="free text")
    p.add_argument("-k", type=int, default=10, help="how many results (default: %(default)s)")
    p.add_argument("--kind", action="append", choices=KINDS, metavar="KIND", help=kind_help)
    for name, text in (("show", "one item in full"), ("history", "every version of an item")):
        sub.add_parser(name, parents=[common], help=text).add_argument("id", help=id_help)
    p = sub.add_parser("add", parents=[common], help="add an item (from flags or one JSON line)",
                       description="Add an item written by hand (source: human). Either --content (with the "
                       "other flags), or --json-line with a JSON object of item fields ('-' reads it from stdin). "
                       "A near-duplicate is merged into the existing item unless --no-dedup.")
    p.add_argument("--content", help="the text the agent will be shown (required without --json-line)")
    p.add_argument("--kind", choices=KINDS, metavar="KIND", help=f"one of {', '.join(KINDS)} (default: note)")
    p.add_argument("--title", help="a short title (default: none)")
    p.add_argument("--tag", action="append", metavar="TAG", help="a tag (repeatable; default: none)")
    p.add_argument("--verified", action="store_true", help="mark it verified (default: unverified)")
    p.add_argument("--pin", action="store_true", help="pin it: the curator never changes it (default: unpinned)")
    p.add_argument("--json-line", metavar="LINE", help="a JSON object of item fields, or '-' for stdin")
    p.add_argument("--no-dedup", action="store_true", help="always a new item, even if a near-duplicate exists")
    p = sub.add_parser("edit", parents=[common], help="edit an item ($EDITOR, or --set field=value)")
    p.add_argument("id", help=id_help)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"fields: {', '.join(EDITABLE_FIELDS)} (tags comma-separated, data as JSON); "
                   "repeatable; without it $EDITOR opens the item")
    p.add_argument("--reason", default="human edit", help="recorded in the history (default: %(default)r)")
    p = sub.add_parser("pin", parents=[common], help="pin an item (the curator never changes it)")
    p.add_argument("id", help=id_help)
    p.add_argument("--unpin", action="store_true", help="remove the pin instead (default: pin)")
    p = sub.add_parser("delete", parents=[common], help="archive an item (--hard removes it)")
    p.add_argument("id", help=id_help)
    p.add_argument("--hard", action="store_true",
                   help="remove the item and its history for good (default: archive, which can be undone)")
    p = sub.add_parser("export", parents=[common], help="write JSONL")
    p.add_argument("file", help="the JSONL file to write (replaced if it exists)")
    p.add_argument("--all", action="store_true", help="every namespace (default: --namespace only)")
    p = sub.add_parser("import", parents=[common], help="read JSONL (items arrive unverified; items the "
                       "namespace already holds, same kind and content, are merged, not added)")
    p.add_argument("file", help="a JSONL file (an export, or hand-written item lines)")
    p.add_argument("--replace", action="store_true", help="replace items whose id exists (default: skip them)")
    p.add_argument("--into", metavar="NS", help="copy every item into namespace NS under new ids "
                   "(default: each line's own namespace, or --namespace when given)")
    p = sub.add_parser("reindex", parents=[common], help="rebuild the vector index from SQL")
    p.add_argument("--all", action="store_true", help="every namespace (default: --namespace only)")
    p = sub.add_parser("prune", parents=[common], help="archive failing or stale items",
                       description="Archive active items that keep failing (--min-failures and --max-utility) "
                       "or are stale (never succeeded, unused for --stale-days). Pinned, human-written and "
                       "allocation items are always kept.")
    p.add_argument("--min-failures", type=int, default=3,
                   help="archive items that failed at least this often... (default: %(default)s)")
    p.add_argument("--max-utility", type=float, default=0.34,
                   help="...and whose utility is at most this (0..1; default: %(default)s)")
    p.add_argument("--stale-days", type=float, default=90.0,
                   help="also archive items that never succeeded and were unused this many days "
                   "(default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="list what would be archived, change nothing")
    from .adapter_admin import add_commands

    add_commands(sub, common)  # train, adapters list|show|export|delete
    return parser


def _console():
    from rich.console import Console

    # Piped output (less, grep, files) gets wide tables instead of 80-column ellipses.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _dump(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, sort_keys=True))


def _short(text: str, width: int = 70) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _items_table(items: list[MemoryItem], title: str, scores: list[float] | None = None) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("id", "kind", "title", "content", "src", "ver", "util", "used +/-", "flags"):
        table.add_column(col, overflow="fold" if col == "id" else "ellipsis")
    if scores is not None:
        table.add_column("score")
    for i, item in enumerate(items):
        flags = " ".join(f for f, on in (("pinned", item.pinned), ("verified", item.verified),
                                         (item.status, item.status != "active")) if on)
        row = [item.id, item.kind, _short(item.title, 30), _short(item.content, 50), item.source, str(item.version),
               f"{item.utility:.2f}", f"{item.times_succeeded}/{item.times_failed}", flags]
        if scores is not None:
            row.append(f"{scores[i]:.3f}")
        table.add_row(*row)
    _console().print(table)


def _show(item: MemoryItem) -> None:
    from rich.panel import Panel
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for name, value in item.model_dump().items():
        if name != "content":
            table.add_row(name, json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value))
    console = _console()
    console.print(table)
    console.print(Panel(item.content, title="content"))


def _parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidItemError(f"--set expects FIELD=VALUE, got {pair!r}")
        field, value = pair.split("=", 1)
        field = field.strip()
        if field not in EDITABLE_FIELDS:
            raise InvalidItemError(f"cannot edit field {field!r}; editable: {', '.join(EDITABLE_FIELDS)}")
        if field == "tags":
            changes[field] = [t.strip() for t in value.split(",") if t.strip()]
        elif field == "data":
            try:
                changes[field] = untrusted.loads(value, allow_nan=False) if value.strip() else None
            except ValueError:
                raise InvalidItemError(f"--set data=...: not valid JSON: {value!r}") from None
        elif field == "verified":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise InvalidItemError(f"--set verified=...: expected true or false, got {value!r}")
            changes[field] = value.lower() in ("true", "1", "yes")
        else:
            changes[field] = value
    return changes


def _edit_in_editor(item: MemoryItem) -> dict[str, Any]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise InvalidItemError("edit: set $EDITOR or pass --set field=value")
    current = {f: getattr(item, f) for f in EDITABLE_FIELDS}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump(current, handle, indent=2, default=str)
        path = handle.name
    try:
        result = subprocess.run([*shlex.split(editor), path], check=False)
        if result.returncode != 0:
            raise InvalidItemError(f"edit: editor {editor!r} exited with status {result.returncode}; nothing changed")
        try:
            with open(path, encoding="utf-8") as handle:
                edited = untrusted.loads(handle.read(), allow_nan=False)
        except ValueError as err:
            raise InvalidItemError(f"edit: the edited file is not valid JSON ({err}); nothing changed") from None
    finally:
        os.unlink(path)
    if not isinstance(edited, dict):
        raise InvalidItemError("edit: the edited file must hold a JSON object; nothing changed")
    unknown = sorted(set(edited) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidItemError(f"edit: cannot edit field(s) {', '.join(unknown)}; nothing changed")
    return {k: v for k, v in edited.items() if v != current.get(k)}


READ_ONLY_COMMANDS = ("stats", "list", "search", "show", "history", "export")


def _open(args: argparse.Namespace, namespace: str):
    from seasoned.errors import SeasonedError
    from sqlalchemy.exc import SQLAlchemyError

    from .bank import MemoryBank

    try:
        return MemoryBank.open(url=args.db, namespace=namespace)
    except (SeasonedError, OSError, SQLAlchemyError) as err:
        if args.command not in READ_ONLY_COMMANDS:
            raise
        try:
            bank = MemoryBank.open(url=args.db, namespace=namespace, read_only=True)
        except Exception:  # noqa: BLE001 - the first error is the one worth reporting
            raise err from None
        print(f"seasoned-admin: note: opened read-only ({_first_line(err)})", file=sys.stderr)
        return bank


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def resolve_id(bank, text: str, namespace: str) -> str:
    """The full id of the item ``text`` names in ``namespace``: its id, or a prefix unique there."""
    from seasoned.errors import ItemNotFound
    from sqlalchemy import select

    from .db import ItemRow

    text = (text or "").strip()
    if not text or len(text) > 64:
        raise ItemNotFound(f"no memory item {text!r} in namespace {namespace!r}")
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with bank.db.read() as s:
        found = list(s.scalars(select(ItemRow.id).where(ItemRow.namespace == namespace,
                                                        ItemRow.id.like(f"{escaped}%", escape="\\"))
                               .order_by(ItemRow.id).limit(6)))
    if text in found:
        return text
    if not found:
        raise ItemNotFound(f"no memory item {text!r} in namespace {namespace!r}")
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise InvalidItemError(f"id prefix {text!r} matches several items ({shown}); give more characters")
    return found[0]


def _new_item(args: argparse.Namespace, namespace: str) -> MemoryItem:
    """The item ``add`` writes: from --json-line (an object of item fields) or from the flags."""
    from pydantic import ValidationError

    from .items import describe_error

    if args.json_line is not None:
        if args.content is not None:
            raise InvalidItemError("add: give --content (with flags) or --json-line, not both")
        line = sys.stdin.readline() if args.json_line == "-" else args.json_line
        try:
            data = untrusted.loads(line, max_depth=64, allow_nan=False)
        except ValueError as err:
            raise InvalidItemError(f"add: --json-line is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise InvalidItemError("add: --json-line must be a JSON object of item fields")
        data = data.get("item", data) if isinstance(data.get("item"), dict) else data  # an export line works too
        fields = {"source": "human", "kind": "note", **data, "namespace": namespace}
        for flag, name in ((args.kind, "kind"), (args.title, "title"), (args.tag, "tags")):
            if flag:
                fields[name] = flag
        fields["verified"] = bool(fields.get("verified")) or args.verified
        fields["pinned"] = bool(fields.get("pinned")) or args.pin
    else:
        if args.content is None:
            raise InvalidItemError("add: --content TEXT (or --json-line LINE) is required")
        fields = {"content": args.content, "kind": args.kind or "note", "title": args.title or "",
                  "tags": args.tag or [], "source": "human", "verified": args.verified, "pinned": args.pin,
                  "namespace": namespace}
    try:
        return MemoryItem.model_validate(fields)
    except ValidationError as err:
        raise InvalidItemError(f"add: {describe_error(err)}") from None


def run(args: argparse.Namespace) -> int:
    if args.command in ("train", "adapters"):  # LoRA adapters: their own table and files, no bank needed
        from .adapter_admin import run as run_adapters

        return run_adapters(args)
    namespace = args.namespace or "default"
    if args.command == "edit" and args.set:
        changes = _parse_set(args.set)  # validate before opening anything
    if args.command == "add":
        new = _new_item(args, namespace)
    bank = _open(args, namespace)
    try:
        cmd = args.command
        if getattr(args, "id", None) is not None:
            args.id = resolve_id(bank, args.id, namespace)
        if cmd == "stats":
            stats = bank.stats()
            if args.json:
                _dump(stats)
            else:
                from rich.table import Table

                table = Table(title=f"memory · namespace {namespace}", show_header=False)
                for key, value in stats.items():
                    table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
                _console().print(table)
        elif cmd == "list":
            items = bank.list(kinds=args.kind, status=None if args.status == "all" else args.status,
                              limit=args.limit, offset=args.offset)
            if args.json:
                _dump([i.model_dump(mode="json") for i in items])
            else:
                _items_table(items, f"{len(items)} item(s) · namespace {namespace}")
        elif cmd == "search":
            hits = bank.retrieve(args.query, k=args.k, kinds=args.kind, track=False)
            if args.json:
                _dump([{"score": h.score, "parts": h.parts, "item": h.item.model_dump(mode="json")} for h in hits])
            else:
                _items_table([h.item for h in hits], f"search: {args.query}", [h.score for h in hits])
        elif cmd == "show":
            item = bank.get(args.id)
            _dump(item.model_dump(mode="json")) if args.json else _show(item)
        elif cmd == "history":
            versions = bank.history(args.id)
            if args.json:
                _dump([v.model_dump(mode="json") for v in versions])
            else:
                from rich.table import Table

                table = Table(title=f"history of {args.id}")
                for col in ("version", "when", "actor", "reason", "status", "content"):
                    table.add_column(col)
                for v in versions:
                    table.add_row(str(v.version), v.created_at.strftime("%Y-%m-%d %H:%M:%S"), v.actor, v.reason,
                                  str(v.snapshot.get("status")), _short(str(v.snapshot.get("content")), 60))
                _console().print(table)
        elif cmd == "edit":
            if not args.set:
                changes = _edit_in_editor(bank.get(args.id))
            item = bank.edit(args.id, changes, reason=args.reason, actor="human") if changes else bank.get(args.id)
            _report(args, f"{args.id}: version {item.version}" + ("" if changes else " (no change)"),
                    item.model_dump(mode="json"))
        elif cmd == "pin":
            item = bank.pin(args.id, not args.unpin)
            _report(args, f"{args.id}: {'pinned' if item.pinned else 'unpinned'}", item.model_dump(mode="json"))
        elif cmd == "delete":
            bank.delete(args.id, hard=args.hard)
            _report(args, f"{args.id}: {'removed' if args.hard else 'archived'}",
                    {"id": args.id, "hard": args.hard})
        elif cmd == "export":
            count = bank.export_jsonl(args.file, all_namespaces=args.all)
            _report(args, f"exported {count} item(s) to {args.file}", {"exported": count, "file": args.file})
        elif cmd == "add":
            result = bank.add(new, dedup=not args.no_dedup, actor="human")
            item = result.item
            if new.pinned and not item.pinned:  # merged into an existing item: the pin asked for still holds
                item = bank.pin(item.id)
            action = getattr(result.action, "value", result.action)
            _report(args, f"{item.id}: {action} ({result.reason})" if result.reason else f"{item.id}: {action}",
                    {"action": action, "reason": result.reason, "item": item.model_dump(mode="json")})
        elif cmd == "import":
            from .transfer import import_jsonl

            counts = import_jsonl(bank, args.file, namespace=args.namespace, replace=args.replace, into=args.into)
            _report(args, ", ".join(f"{k} {v}" for k, v in counts.items()), counts)
        elif cmd == "reindex":
            count = bank.reindex(all_namespaces=args.all)
            _report(args, f"indexed {count} row(s)", {"indexed": count})
        elif cmd == "prune":
            chosen = bank.prune(min_failures=args.min_failures, max_utility=args.max_utility,
                                stale_days=args.stale_days, dry_run=args.dry_run)
            if args.json:
                _dump([{"id": i, "reason": r, "archived": not args.dry_run} for i, r in chosen])
            else:
                verb = "would archive" if args.dry_run else "archived"
                print(f"{verb} {len(chosen)} item(s)")
                for item_id, reason in chosen:
                    print(f"  {item_id}  {reason}")
        return 0
    finally:
        bank.close()


def _report(args: argparse.Namespace, text: str, data: Any) -> None:
    _dump(data) if args.json else print(text)


def main(argv: Sequence[str] | None = None) -> int:
    """The program (``argv`` None: ``sys.argv``), or one command from Python (``argv`` given)."""
    args = _parser().parse_args(argv)
    quiet_third_party(getattr(args, "verbose", False))
    code = _main(args)
    if argv is None and args.command == "search":
        # As a program, a search ends without Python's teardown of torch and transformers (about 2 s of
        # CPU here): it wrote nothing, the bank is closed and the output is flushed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(args: argparse.Namespace) -> int:
    from seasoned.errors import SeasonedError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return run(args)
    except SeasonedError as err:
        print(f"seasoned-admin: error: {err}", file=sys.stderr)
        return 1
    except SQLAlchemyError as err:  # one line, never a traceback (the message names the database's complaint)
        print(f"seasoned-admin: error: database: {_first_line(getattr(err, 'orig', None) or err)}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"seasoned-admin: error: {err.strerror or err}"
              f"{f': {err.filename}' if getattr(err, 'filename', None) else ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
