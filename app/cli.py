"""The ``tablerouter`` command: serve, lmsim, eval, introspect, route."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.observability.logs import logging_config
    from app.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=logging_config(settings.log_format, args.log_level),
    )
    return 0


def _lmsim(args: argparse.Namespace) -> int:
    from app.llm.simulator import run_from_args

    return run_from_args(args)


def _eval(args: argparse.Namespace) -> int:
    from app.eval.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="tablerouter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    from app.llm.simulator import add_arguments

    lmsim = sub.add_parser("lmsim", help="run the OpenAI-compatible LM simulator")
    add_arguments(lmsim)
    lmsim.set_defaults(func=_lmsim)

    from app.eval.cli import add_arguments as add_eval_arguments

    evaluate = sub.add_parser("eval", help="measure table recall on a Spider-format benchmark")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
