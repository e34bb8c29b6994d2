"""bot.py's entry point: arguments, settings (environment and .env), logging, one command,
exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from bot import event_loop, words
from bot.cli.exits import EXIT_FAILED, EXIT_USAGE
from bot.cli.parser import build_parser, settings_from
from core import logs
from core.errors import (
    CampaignError,
    ConfigError,
    InvalidRequest,
    LeaseLost,
    QuotaExceeded,
    RequestBlocked,
)

if TYPE_CHECKING:  # the commands load the service: only once the arguments are understood
    from bot.cli.commands import Build, Command
    from bot.settings import AppSettings


def main(
    argv: list[str] | None,
    *,
    load: Callable[[], AppSettings],
    build: Build,
    front_ends: Mapping[str, Command] | None = None,
) -> int:
    """Parse arguments, read the settings, run the command, map errors to exit codes.

    `load` reads the settings (once, after the arguments: --help and --version
    read nothing), `build` wires the service, `front_ends` run the commands
    bot.py serves itself (slack, discord, gallery): bot.py hands all three in,
    so this package imports no adapter.
    """
    args = build_parser().parse_args(argv)  # --help and --version end here
    from bot.cli.commands import dispatch

    logs.configure("text", verbose=args.verbose)
    try:
        settings = settings_from(args, load())  # the environment, over .env
        logs.configure(settings.core.log_format, verbose=args.verbose)
        return event_loop.run(dispatch(args, settings, build, front_ends or {}))
    except (InvalidRequest, ConfigError, RequestBlocked, QuotaExceeded) as exc:
        print(f"error: {words.refusal(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (CampaignError, LeaseLost) as exc:
        print(f"error: {words.refusal(exc)}", file=sys.stderr)
        return EXIT_FAILED
