"""The command line's arguments, and the settings they override.

Global options work before or after the subcommand; every subcommand is
listed here, including the front ends that bot.py serves.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.health import project_version
from core.setting_values import EXECUTORS, GENERATORS

if TYPE_CHECKING:  # pydantic loads with the settings, after --help and --version
    from bot.settings import AppSettings

# Options every command takes, before or after the subcommand: (flags, argparse keywords).
GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--db",),
        {"help": "SQLite file or postgresql:// URL (env CAMPAIGN_DB)", "metavar": "FILE|URL"},
    ),
    (("--data-dir",), {"type": Path, "help": "output folder (env CAMPAIGN_DATA_DIR)"}),
    (("--executor",), {"choices": EXECUTORS, "help": "env CAMPAIGN_EXECUTOR"}),
    (("--generator",), {"choices": GENERATORS, "help": "env CAMPAIGN_GENERATOR"}),
    (("--json",), {"action": "store_true", "help": "print JSON on stdout"}),
    (("-v", "--verbose"), {"action": "store_true", "help": "log to stderr"}),
)
MODEL_KINDS = ("text", "image", "video")


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The GLOBAL_OPTIONS; without `defaults` an option absent here leaves the value alone.

    The main parser sets the defaults; a subcommand's copies use SUPPRESS, so
    `bot.py --json run x` is not undone by the subcommand's own (absent) --json.
    """
    extra: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    for flags, options in GLOBAL_OPTIONS:
        parser.add_argument(*flags, **options, **extra)


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse.ArgumentParser:
    """A subcommand that takes the global options too; add its own arguments to the result."""
    command = sub.add_parser(name, help=help, description=help)
    add_global_options(command, defaults=False)
    return command


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments; global options work before or after the subcommand."""
    parser = argparse.ArgumentParser(prog="bot.py", description="Campaign bot")
    parser.add_argument("--version", action="version", version=f"%(prog)s {project_version()}")
    add_global_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)
    run = add_command(sub, "run", "run one campaign")
    run.add_argument("request", help="e.g. 'theme:\"retro cats\" products:5 videos:yes'")
    _model_options(run)
    add_command(sub, "demo", "run a sample campaign offline")
    history = add_command(sub, "history", "list recent campaigns")
    history.add_argument("--limit", type=int, default=20)
    for name, text in (
        ("show", "show one campaign"),
        ("cancel", "cancel a campaign"),
        ("retry", "re-run failed or canceled steps"),
    ):
        command = add_command(sub, name, text)
        command.add_argument("id")
        if name == "retry":
            _model_options(command)
    reroll = add_command(sub, "reroll", "make product N of a campaign again with a new seed")
    reroll.add_argument("id")
    reroll.add_argument("product", type=int, help="product number as `show` lists it (1, 2, ...)")
    animate = add_command(
        sub, "animate", "animate an image file, or products of a campaign that have no video"
    )
    animate.add_argument("target", help="an image file (PNG, JPEG, WebP) or a campaign id")
    animate.add_argument("product", type=int, nargs="?", help="with an id: only product N")
    animate.add_argument("--prompt", help="motion prompt (default: the product's video prompt)")
    export = add_command(sub, "export", "zip a campaign's files with campaign.json")
    export.add_argument("id")
    export.add_argument("--out", type=Path, help="zip file to write (default campaign-ID.zip)")
    resume = add_command(sub, "resume", "finish campaigns a stopped process left")
    resume.add_argument(
        "--wait",
        action="store_true",
        help="also wait for campaigns a live process holds, and finish them once it lets go",
    )
    _serving_commands(sub)
    return parser


def _serving_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """slack, discord, usage, models and gallery (in the order --help lists them)."""
    slack = add_command(sub, "slack", "serve the Slack front end")
    slack.add_argument("--port", type=int, default=3000, help="HTTP port (path /slack/events)")
    slack.add_argument("--host", default="127.0.0.1", help="address to bind in HTTP mode")
    slack.add_argument("--socket", action="store_true", help="Socket Mode (SLACK_APP_TOKEN)")
    discord = add_command(sub, "discord", "run the Discord front end")
    discord.add_argument(
        "--sync",
        action="store_true",
        help="upload the slash commands first (to DISCORD_GUILD_IDS, or globally)",
    )
    usage_cmd = add_command(sub, "usage", "spend per user, channel and server")
    usage_cmd.add_argument("--days", type=float, help="only the last N days (default: all time)")
    add_command(sub, "models", "the Replicate model of each kind, as mapped and priced")
    gallery = add_command(sub, "gallery", "serve the read-only campaign gallery")
    gallery.add_argument("--host", default="127.0.0.1", help="address to bind")
    gallery.add_argument("--port", type=int, default=8081, help="HTTP port")


def _model_options(command: argparse.ArgumentParser) -> None:
    for kind in MODEL_KINDS:
        command.add_argument(
            f"--{kind}-model", help=f"Replicate {kind} model, owner/name[:version]"
        )


def model_flags(args: argparse.Namespace) -> dict[str, str | None]:
    """The --text-model/--image-model/--video-model options given."""
    return {kind: getattr(args, f"{kind}_model", None) for kind in MODEL_KINDS}


def settings_from(args: argparse.Namespace, base: AppSettings) -> AppSettings:
    """Settings with the command line's overrides applied (to the core section)."""
    changes: dict[str, Any] = {}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if args.db:
        from core.settings import database  # pydantic loads with the settings, not with --help

        changes |= {"db_path": None, "database_url": None, **database(args.db)}
    for name in ("executor", "generator"):
        if getattr(args, name):
            changes[name] = getattr(args, name)
    if args.command == "demo":
        changes["generator"] = "offline"
    return base.model_copy(update={"core": base.core.model_copy(update=changes)})
