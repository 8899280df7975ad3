"""``seasoned-admin train`` and ``seasoned-admin adapters list|show|export|delete``: LoRA adapters by hand.

    seasoned-admin train [--namespace NS] [--model local/M] [--scope S] [--max-seconds N] [--seed N]
    seasoned-admin adapters list [--namespace NS] [--model M] [--scope S] [--status S]
    seasoned-admin adapters show ID | export ID FILE | delete ID

``train`` runs in this process (the background trigger runs this same command in a child process); an
adapter that fails its held-out check is stored ``rejected`` and the command still exits 0 (it did its job);
a refusal (not a local model, too few verified replies, a cap) prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .adapters import STATUSES, Adapter, AdapterStore


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``train`` and ``adapters`` subcommands, on the admin's parser."""
    p = sub.add_parser("train", parents=[common], help="train a LoRA adapter of a local model on verified replies",
                       description="Train a LoRA adapter for (namespace, model, scope) on the namespace's verified "
                       "demonstrations, check it on held-out ones and store it (active if it helps, else rejected).")
    p.add_argument("--model", help="a local/... model (default: SEASONED_MODEL)")
    p.add_argument("--scope", default="general", help="the environment's name, or 'general' (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, help="time cap (default: SEASONED_TRAIN_MAX_SECONDS)")
    p.add_argument("--max-rss-mb", type=float, help="memory cap in MB (default: SEASONED_TRAIN_MAX_RSS_MB)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads (default: the cores not busy)")
    p.add_argument("--epochs", type=int, default=3, help="passes over the training items (default: %(default)s)")
    p.add_argument("--reply", choices=["raw", "compact"], default="raw",
                   help="train on replies as the model wrote them, or as the curator compacted them "
                   "(default: %(default)s)")
    p = sub.add_parser("adapters", parents=[common], help="list, show, export or delete LoRA adapters")
    actions = p.add_subparsers(dest="adapters_command", required=True, metavar="ACTION", help="what to do")
    q = actions.add_parser("list", parents=[common], help="adapters (every namespace unless --namespace)")
    q.add_argument("--model", help="only this model")
    q.add_argument("--scope", help="only this scope")
    q.add_argument("--status", choices=STATUSES, help="only this status")
    for name, text in (("show", "one adapter in full"), ("delete", "remove an adapter and its file")):
        actions.add_parser(name, parents=[common], help=text).add_argument("id", help="an adapter id or unique prefix")
    q = actions.add_parser("export", parents=[common], help="copy an adapter's GGUF (llama.cpp --lora) to FILE")
    q.add_argument("id", help="an adapter id or unique prefix")
    q.add_argument("file", help="the file (or folder) to write")


def run(args: argparse.Namespace) -> int:
    from seasoned.settings import default_db_url

    from .db import Database

    db = Database(args.db or default_db_url(), setting="--db" if args.db else "SEASONED_DB_URL")
    try:
        store = AdapterStore(db)
        if args.command == "train":
            return _train(args, db, store)
        return _adapters(args, store)
    finally:
        db.dispose()


def _train(args: argparse.Namespace, db: Any, store: AdapterStore) -> int:
    from seasoned.settings import settings

    from .training import TrainingConfig, train_adapter

    config = TrainingConfig(seed=args.seed, epochs=args.epochs, reply=args.reply, max_seconds=args.max_seconds,
                            max_rss_mb=args.max_rss_mb, threads=args.threads)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else (lambda text: print(text, flush=True))
    result = train_adapter(db, args.namespace or "default", args.model or settings().model, args.scope,
                           config=config, store=store, progress=say)
    if args.json:
        print(json.dumps({**result.adapter.as_dict(), "seconds": round(result.seconds, 1)}, default=str, indent=2))
    return 0


def _adapters(args: argparse.Namespace, store: AdapterStore) -> int:
    action = args.adapters_command
    if action == "list":
        found = store.list(namespace=args.namespace, model=args.model, scope=args.scope, status=args.status)
        if args.json:
            print(json.dumps([a.as_dict() for a in found], default=str, indent=2))
        else:
            _table(found)
        return 0
    adapter_id = store.resolve(args.id)
    if action == "show":
        adapter = store.get(adapter_id)
        print(json.dumps(adapter.as_dict(), default=str, indent=2))
    elif action == "export":
        target = store.export(adapter_id, args.file)
        _say(args, f"exported adapter {adapter_id} to {target}", {"id": adapter_id, "file": str(target)})
    elif action == "delete":
        adapter = store.delete(adapter_id)
        _say(args, f"{adapter.id}: removed", {"id": adapter.id, "removed": True})
    return 0


def _say(args: argparse.Namespace, text: str, data: dict) -> None:
    print(json.dumps(data) if args.json else text)


def _table(adapters: list[Adapter]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(adapters)} adapter(s)")
    for column in ("id", "namespace", "model", "scope", "v", "status", "items", "held-out NLL", "answers", "s",
                   "RSS MB", "created"):
        table.add_column(column, overflow="fold" if column == "id" else "ellipsis")
    for a in adapters:
        check = a.check or {}
        base, mine = check.get("base") or {}, check.get("adapter") or {}
        nll = f"{base.get('nll')} -> {mine.get('nll')}" if base else "-"
        answers = f"{base.get('matches')} -> {mine.get('matches')}/{check.get('with_answer')}" if base else "-"
        table.add_row(a.id[:12], a.namespace, a.model, a.scope, str(a.version), a.status, str(a.train_items), nll,
                      answers, f"{a.train_seconds:.0f}", f"{a.peak_rss_mb:.0f}",
                      a.created_at.strftime("%Y-%m-%d %H:%M") if a.created_at else "")
    Console(width=None if sys.stdout.isatty() else 200).print(table)
