"""Command line: ``python -m appliance SUBCOMMAND``.

Exit status: 0 success, 1 the command ran and failed, 2 bad config or usage.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from appliance import __version__
from appliance.config import Config, load_config
from appliance.errors import ApplianceError, ConfigError
from appliance.filemodes import use_private_umask
from appliance.locations import command_name, find_config
from appliance.logs import LoggingSetup, setup_logging

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", type=Path,
        help="ini file to read; without it the first found of $PHONEBOOK_CONFIG, "
             "/etc/phonebook-appliance/config.ini and ./config.ini, else the embedded defaults")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=command_name(),
        description="Phonebook Appliance: company contacts served to Cisco IP phones.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    # Given before COMMAND. A separate dest, because argparse lets a subcommand's own
    # --config default overwrite the value parsed here.
    parser.add_argument("--config", dest="config_before_command", metavar="FILE", type=Path,
                        help="ini file to read; also accepted after COMMAND")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the directory to phones")
    _add_config_option(serve)
    serve.set_defaults(handler=cmd_serve, log_files=True)

    do_import = commands.add_parser(
        "import", help="replace the imported contacts with a CSV or vCard file")
    _add_config_option(do_import)
    do_import.add_argument("path", type=Path, metavar="PATH",
                           help="Google Contacts CSV export or vCard (.vcf) file")
    do_import.set_defaults(handler=cmd_import)

    check = commands.add_parser("check-config", help="validate the config file and exit")
    _add_config_option(check)
    check.set_defaults(handler=cmd_check_config)

    version = commands.add_parser("version", help="print the version and build details")
    _add_config_option(version)
    version.set_defaults(handler=cmd_version)

    token = commands.add_parser("token", help="issue, list and revoke per-phone access tokens")
    token_actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    create = token_actions.add_parser("create", help="issue a token and print it once")
    create.add_argument("name", help="what the token is for, such as the phone's SEP name")
    listing = token_actions.add_parser("list", help="list tokens with their last use")
    revoke = token_actions.add_parser("revoke", help="revoke a token by its ID")
    revoke.add_argument("token_id", type=int, metavar="ID", help="the ID shown by token list")
    for action in (create, listing, revoke):
        _add_config_option(action)
    token.set_defaults(handler=cmd_token)

    init_config = commands.add_parser(
        "init-config", help="print an example config file with every setting at its default")
    init_config.add_argument(
        "--service", action="store_true",
        help="set data and log folders to /var/lib/phonebook-appliance and "
             "/var/log/phonebook-appliance, as the systemd service uses")
    init_config.set_defaults(handler=cmd_init_config, needs_config=False)

    from appliance.sources.google.commands import add_commands as add_google_commands

    add_google_commands(commands, _add_config_option)

    hash_password = commands.add_parser(
        "hash-password", help="make a salted hash of an admin password for [admin] password_hash")
    hash_password.add_argument("--stdin", action="store_true",
                               help="read the password from the first line of standard input "
                                    "instead of asking twice on the terminal")
    hash_password.set_defaults(handler=cmd_hash_password, needs_config=False)

    profile = commands.add_parser(
        "profile", help="send a synthetic phone load through the app in-process and print "
                        "the functions that take the most time")
    _add_config_option(profile)
    profile.add_argument("--requests", type=int, default=2000, metavar="N",
                         help="requests to send (default 2000)")
    profile.add_argument("--path", action="append", dest="paths", metavar="PATH",
                         help="request path with its query, such as "
                              "/directory/search/name?q=ann; repeat for several. Default: "
                              "a phone session of menu, browse, searches and lookup")
    profile.add_argument("--top", type=int, default=25, metavar="N",
                         help="functions to list in each table (default 25)")
    profile.set_defaults(handler=cmd_profile)
    return parser


def render_command_table(parser: argparse.ArgumentParser | None = None) -> str:
    """Render the README's command table from the parser: one row per command.

    A command with actions of its own (``token``) gets a row per action. A row
    shows the positional arguments in capitals, such as ``import PATH``.
    """
    rows = ["| command | what it does |", "|---|---|"]
    for words, help_text in _command_rows(parser or build_parser(), []):
        cell = help_text.replace("|", "\\|")
        rows.append(f"| `{' '.join(words)}` | {cell} |")
    return "\n".join(rows) + "\n"


def _command_rows(parser: argparse.ArgumentParser,
                  prefix: list[str]) -> list[tuple[list[str], str]]:
    rows = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, command in action.choices.items():
            words = prefix + [name]
            nested = _command_rows(command, words)
            if nested:
                rows += nested
                continue
            arguments = [item.metavar or item.dest.upper() for item in command._actions
                         if not item.option_strings and item.nargs != 0]
            rows.append((words + arguments, helps[name]))
    return rows


def version_text() -> str:
    from appliance.buildinfo import render_version_text

    return render_version_text()


def cmd_version(args: argparse.Namespace, config: Config) -> int:
    print(version_text())
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    print(f"config: {args.config_choice.describe()}: valid")
    return EXIT_OK


def cmd_hash_password(args: argparse.Namespace, config: Config | None) -> int:
    import getpass

    from appliance.web.admin_auth import MIN_PASSWORD_LENGTH, hash_password

    try:
        if args.stdin:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            password = line.rstrip("\r\n")
        else:
            password = getpass.getpass("New admin password: ")
            if getpass.getpass("Same password again: ") != password:
                print("error: the two passwords differ; nothing was made.", file=sys.stderr)
                return EXIT_FAILED
    except EOFError:
        # Ctrl-D leaves the cursor after the prompt, so the error starts a new line.
        print("" if args.stdin else "\n", end="", file=sys.stderr)
        print("error: standard input ended before a password was entered; nothing was "
              "made. Run hash-password on a terminal, or pipe the password in with "
              "--stdin.", file=sys.stderr)
        return EXIT_CONFIG
    if len(password) < MIN_PASSWORD_LENGTH:
        print(f"error: the password has {len(password)} characters; use at least "
              f"{MIN_PASSWORD_LENGTH}.", file=sys.stderr)
        return EXIT_FAILED
    print(f"password_hash = {hash_password(password)}")
    print("Put the line above into the [admin] section of the config file and restart.",
          file=sys.stderr)
    return EXIT_OK


def cmd_init_config(args: argparse.Namespace, config: Config | None) -> int:
    from appliance.config import render_example_ini
    from appliance.locations import render_service_ini

    sys.stdout.write(render_service_ini() if args.service else render_example_ini())
    return EXIT_OK


def cmd_profile(args: argparse.Namespace, config: Config) -> int:
    from appliance.profiling import DEFAULT_LOAD_PATHS, run_profile

    if args.requests < 1 or args.top < 1:
        raise ConfigError(f"Invalid --requests {args.requests} or --top {args.top}: "
                          "expected whole numbers of at least 1, such as 2000 and 25.")
    paths = args.paths or list(DEFAULT_LOAD_PATHS)
    bad = [path for path in paths if not path.startswith("/")]
    if bad:
        raise ConfigError(f"Invalid --path {bad[0]!r}: expected a path that starts with /, "
                          "such as /directory/search/name?q=ann.")
    run_profile(config, args.requests, paths, args.top, sys.stdout)
    return EXIT_OK


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from appliance.sources.files import run_import
    from appliance.store import Store

    if not args.path.is_file():
        # Checked before the store opens, so a mistyped path creates no data folder.
        print(f"error: {args.path} not found. Check the path of the CSV or vCard file "
              "to import.", file=sys.stderr)
        return EXIT_FAILED
    store = Store.open(config.storage.data_dir)
    try:
        return run_import(store, config, args.path, out=sys.stdout)
    finally:
        store.close()


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from appliance.runtime import build_appliance
    from appliance.server import Server, adjustments_from_config

    appliance = build_appliance(config)
    try:
        server = Server(appliance.wsgi, config.server.host, config.server.port,
                        threads=config.server.threads, **adjustments_from_config(config))
    except OSError as error:
        appliance.stop()
        raise listen_error(config, error) from None

    def handle_signal(signum: int, frame) -> None:
        logger.info("stop requested", extra={"signal": signal.Signals(signum).name})
        server.request_stop()

    appliance.bind_port(server.port)
    if not config.server.public_base_url:
        logger.warning("public_base_url not set", extra={
            "derived_base_url": appliance.base_url,
            "hint": "set [server] public_base_url to the address phones use, such as "
                    "http://192.168.1.10:8080"})
    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    appliance.start_threads()
    # Build the directory index now: phones that connect meanwhile wait in the listen
    # backlog instead of the first one waiting seconds for 25,000 contacts.
    appliance.directory.index()
    logger.info("serving", extra={
        "listen": f"{config.server.host}:{server.port}", "config": config.source,
        "contacts": appliance.store.count_contacts(), "version": __version__})
    try:
        server.run()
    finally:
        appliance.stop()
        logger.info("stopped")
    return EXIT_OK


# Hints for a listening socket that cannot be opened, by errno.
_LISTEN_HINTS = {
    errno.EADDRINUSE: "Another program uses this port: stop it, or set [server] port to a free one",
    errno.EACCES: "Ports below 1024 need extra privileges: set [server] port to 1024 or more, "
                  "such as 8080",
    errno.EADDRNOTAVAIL: "This box has no such address: set [server] host to one of its "
                         "addresses, or to 0.0.0.0 for all of them",
}


def listen_error(config: Config, error: OSError) -> ConfigError:
    """Turn a failure to open the listening socket into a one-line ConfigError."""
    hint = _LISTEN_HINTS.get(error.errno, "Check [server] host and port")
    if config.path is None:
        where = "a config file given with --config (none is in use now)"
    else:
        where = str(config.path)
    return ConfigError(
        f"Cannot listen on {config.server.host}:{config.server.port}: "
        f"{error.strerror or error}. {hint} in {where}.")


def cmd_token(args: argparse.Namespace, config: Config) -> int:
    from appliance.runtime import derive_base_url
    from appliance.store import Store
    from appliance.tokens import PhoneTokens, run_token_command

    store = Store.open(config.storage.data_dir)
    try:
        return run_token_command(
            args.token_action, PhoneTokens(store), sys.stdout, sys.stderr,
            name=getattr(args, "name", ""), token_id=getattr(args, "token_id", 0),
            base_url=derive_base_url(config, config.server.port))
    finally:
        store.close()


def _setup_logging(args: argparse.Namespace, config: Config) -> LoggingSetup:
    """Log as [logging] sets for ``serve``; other commands log to stderr only.

    Those run beside a server that owns the log files, and their standard output
    carries the command's own output. On a terminal their lines are text.
    """
    if getattr(args, "log_files", False):
        return setup_logging(config)
    return setup_logging(config, files=False, console_stream=sys.stderr,
                         console_format="text" if sys.stderr.isatty() else None)


def _config_option(args: argparse.Namespace) -> Path | None:
    """Return the --config file, given before or after the subcommand."""
    before, after = args.config_before_command, getattr(args, "config", None)
    if before is not None and after is not None and before != after:
        raise ConfigError(f"--config is given twice, as {before} and as {after}: give it "
                          "once, before or after the command.")
    return after if after is not None else before


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(version_text())
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    handler: Callable[[argparse.Namespace, Config], int] = args.handler
    logging_setup = None
    try:
        if not getattr(args, "needs_config", True):
            return handler(args, None)
        args.config_choice = find_config(_config_option(args))
        config = load_config(args.config_choice.path)
        logging_setup = _setup_logging(args, config)
        use_private_umask()
        logger.info("config loaded", extra={"config": config.source,
                                            "config_origin": args.config_choice.origin})
        return handler(args, config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except ApplianceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    finally:
        if logging_setup is not None:
            logging_setup.close()
