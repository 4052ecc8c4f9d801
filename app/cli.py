"""The ``tablerouter`` command: serve, migrate, keys, feedback, memory, openapi, lmsim, eval."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

STARTUP_FAILURE = 3  # uvicorn's exit code when the server did not start


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from app.connections import ServingConfig, protocol_class
    from app.observability.logs import logging_config
    from app.observability.redaction import secrets_of
    from app.serving import server_options
    from app.settings import get_settings

    settings = get_settings()
    # An import string, so that uvicorn can start each worker process with its own app; the
    # config (not uvicorn.run) because it carries the request-head timeout uvicorn lacks.
    config = ServingConfig(
        "app.main:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=logging_config(settings.log_format, args.log_level, secrets_of(settings)),
        workers=args.workers,
        loop=args.loop,
        http=protocol_class(args.http),
        access_log=args.access_log,
        **server_options(settings),
    )
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    server.run()
    return 0 if server.started else STARTUP_FAILURE


def _migrate(args: argparse.Namespace) -> int:
    from app.store.commands import run_migrate

    return run_migrate(args)


def _feedback(args: argparse.Namespace) -> int:
    from app.store.commands import export_feedback

    return export_feedback(args)


def _memory(args: argparse.Namespace) -> int:
    from app.memory.commands import run

    return run(args)


def _keys(args: argparse.Namespace) -> int:
    from app.auth.commands import run

    return run(args)


def _lmsim(args: argparse.Namespace) -> int:
    from app.simulator.service import run_from_args

    return run_from_args(args)


def _eval(args: argparse.Namespace) -> int:
    from app.eval.cli import run

    return run(args)


def _openapi(args: argparse.Namespace) -> int:
    from app.api.openapi_doc import render_openapi
    from app.main import create_app
    from app.settings import Settings

    # Only the routes are needed: the lifespan (engines, LM, introspection) never runs.
    sys.stdout.write(render_openapi(create_app(Settings())))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of every subcommand.

    The options of ``lmsim`` and ``eval`` are defined beside their code, which imports the web
    stack and DSPy (seconds on a busy machine): only a parser for that ``command`` loads them,
    so ``tablerouter migrate`` or ``--help`` starts at once.
    """
    parser = argparse.ArgumentParser(prog="tablerouter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes; each has its own LM limiter (TABLEROUTER_LLM_MAX_CONCURRENCY each) and catalogs",
    )
    serve.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    serve.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto")
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="migrate the service's own store (TABLEROUTER_DATABASE_URL)")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.add_argument("--downgrade", action="store_true", help="migrate down to --revision (e.g. base)")
    migrate.set_defaults(func=_migrate)

    from app.auth.commands import add_arguments as add_keys_arguments

    keys = sub.add_parser("keys", help="API keys: create (prints the secret once), list, revoke")
    add_keys_arguments(keys)
    keys.set_defaults(func=_keys)

    feedback = sub.add_parser("feedback", help="the feedback dataset")
    actions = feedback.add_subparsers(dest="feedback_action", required=True)
    export = actions.add_parser(
        "export", help="write routes with feedback as JSON lines {id, db_id, question, gold_tables}"
    )
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.add_argument("--source", help="only routes over this source")
    export.add_argument(
        "--since", type=datetime.fromisoformat, help="only feedback from this ISO time on, with a zone"
    )
    export.set_defaults(func=_feedback)

    from app.memory.commands import add_arguments as add_memory_arguments

    memory = sub.add_parser("memory", help="the route memory: import rows or a query log, forget an entry")
    add_memory_arguments(memory)
    memory.set_defaults(func=_memory)

    openapi = sub.add_parser("openapi", help="print the OpenAPI document: tablerouter openapi > openapi.json")
    openapi.set_defaults(func=_openapi)

    lmsim = sub.add_parser("lmsim", help="run the OpenAI-compatible LM simulator")
    if command == "lmsim":
        from app.simulator.service import add_arguments

        add_arguments(lmsim)
    lmsim.set_defaults(func=_lmsim)

    evaluate = sub.add_parser("eval", help="measure table recall on a Spider-format benchmark")
    if command == "eval":
        from app.eval.cli import add_arguments as add_eval_arguments

        add_eval_arguments(evaluate)
    evaluate.set_defaults(func=_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # The subcommand is the first word that is not an option (the top level takes no values).
    command = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from app.settings import settings_error_line

    try:
        result: int = args.func(args)
    except ValidationError as exc:
        # One line naming the field, never a traceback: the values (a source's URL) hold passwords.
        sys.stderr.write(settings_error_line(exc) + "\n")
        return 2
    except SettingsError as exc:  # a value that is not JSON; pydantic-settings' message names no value
        sys.stderr.write(f"invalid settings: {exc}\n")
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
