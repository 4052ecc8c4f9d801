"""``tablerouter keys create|list|revoke``: API keys in the store at TABLEROUTER_DATABASE_URL.

``create`` prints the new key's secret on standard output, alone (so a script can capture it),
and its details on standard error; the secret is never shown again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys

from app.auth.key_repository import ApiKeyRepository, KeyRecord
from app.auth.keys import GrantSpecError, grant_problem, parse_grant
from app.settings import DEMO_SOURCE, get_settings
from app.store.database import Store
from app.store.migrate import upgrade_async

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``keys`` subcommands."""
    actions = parser.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser("create", help="create a key and print its secret (once)")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="S[:PATTERN,...]",
        help="a source the key may route over, optionally only its tables matching grant patterns, a glob "
        "per part (sales:public.*,analytics.fact_*; quote parts with dots); repeat for more sources",
    )
    create.add_argument("--admin", action="store_true", help="sees every source, manages keys, refreshes")
    create.add_argument(
        "--rate-limit", type=int, help="routes per minute (default: TABLEROUTER_KEY_RATE_LIMIT)"
    )
    create.add_argument(
        "--daily-tokens", type=int, help="LM tokens per UTC day (default: TABLEROUTER_KEY_DAILY_TOKENS)"
    )
    create.add_argument(
        "--daily-usd",
        type=float,
        help="dollars of LM tokens per UTC day, at the LM prices (default: TABLEROUTER_KEY_DAILY_USD)",
    )
    actions.add_parser("list", help="list the keys (never their secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key's id (keys list)")


def _grants(specs: list[str]) -> dict[str, list[str]]:
    grants: dict[str, list[str]] = {}
    for spec in specs:
        source, patterns = parse_grant(spec)
        grants.setdefault(source, [])
        grants[source] += [p for p in patterns if p not in grants[source]]
    return grants


def _line(record: KeyRecord) -> str:
    state = "revoked " + record.revoked_at.isoformat() if record.revoked_at else "active"
    grants = "ALL (admin)" if record.admin else json.dumps(record.grants, separators=(",", ":"))
    limits = f"rate={record.rate_limit if record.rate_limit is not None else 'default'}"
    limits += f" tokens={record.daily_tokens if record.daily_tokens is not None else 'default'}"
    limits += f" usd={record.daily_usd:g}" if record.daily_usd is not None else " usd=default"
    return "\t".join([record.id, record.prefix + "…", record.name, state, grants, limits])


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    url = settings.database_url.get_secret_value()
    if settings.migrate_on_start:
        await upgrade_async(url)
    store = Store(url)
    try:
        keys = ApiKeyRepository(store)
        if args.keys_action == "create":
            new = await keys.create(
                args.name,
                _grants(args.source),
                admin=args.admin,
                rate_limit=args.rate_limit,
                daily_tokens=args.daily_tokens,
                daily_usd=args.daily_usd,
            )
            print(new.secret)
            print(f"created {_line(new.record)}\nthe secret above is shown once only", file=sys.stderr)
        elif args.keys_action == "list":
            for record in await keys.list_all():
                print(_line(record))
        else:
            revoked = await keys.revoke(args.key_id)
            if revoked is None:
                print(f"no key {args.key_id!r}", file=sys.stderr)
                return 1
            print(
                f"revoked {revoked.id}; running services stop accepting it within "
                f"TABLEROUTER_KEY_CACHE_S ({settings.key_cache_s:g} s)",
                file=sys.stderr,
            )
        return 0
    finally:
        await store.aclose()


def run(args: argparse.Namespace) -> int:
    """Run a ``keys`` subcommand."""
    if args.keys_action == "create":
        if not args.source and not args.admin:
            print("give at least one --source (or --admin)", file=sys.stderr)
            return 2
        for value in (args.rate_limit, args.daily_tokens, args.daily_usd):
            # Written so NaN fails too; inf is no budget a store could keep.
            if value is not None and not 0 <= value < math.inf:
                print("limits are finite numbers >= 0 (0: unlimited)", file=sys.stderr)
                return 2
        try:
            grants = _grants(args.source)
        except GrantSpecError as exc:
            print(exc, file=sys.stderr)
            return 2
        # The sources the service started with these settings has (the demo one when none).
        sources = list(get_settings().sources) or [DEMO_SOURCE]
        problem = grant_problem(grants, admin=args.admin, sources=sources)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    return asyncio.run(_run(args))
