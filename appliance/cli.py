"""Command line: ``python -m appliance SUBCOMMAND``.

Exit status: 0 success, 1 the command ran and failed, 2 bad config or usage.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from appliance import __version__
from appliance.config import Config, load_config
from appliance.errors import ApplianceError, ConfigError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="ini file to read; without it the embedded defaults apply")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m appliance",
        description="Phonebook Appliance: company contacts served to Cisco IP phones.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the directory to phones")
    _add_config_option(serve)
    serve.set_defaults(handler=cmd_serve)

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
    return parser


def version_text() -> str:
    import platform

    return (f"phonebook-appliance {__version__} (Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()})")


def cmd_version(args: argparse.Namespace, config: Config) -> int:
    print(version_text())
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    print(f"{config.source}: valid")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from appliance.sources.files import run_import
    from appliance.store import Store

    store = Store.open(config.storage.data_dir)
    try:
        return run_import(store, config, args.path, out=sys.stdout)
    finally:
        store.close()


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from appliance.runtime import build_appliance
    from appliance.server import Server

    appliance = build_appliance(config)
    server = Server(appliance.wsgi, config.server.host, config.server.port,
                    threads=config.server.threads)

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
    logger.info("serving", extra={
        "listen": f"{config.server.host}:{server.port}", "config": config.source,
        "contacts": appliance.store.count_contacts(), "version": __version__})
    try:
        server.run()
    finally:
        appliance.stop()
        logger.info("stopped")
    return EXIT_OK


def _setup_basic_logging() -> None:
    """Send log lines to stderr until the logging setup takes over."""
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)


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
    try:
        config = load_config(getattr(args, "config", None))
        _setup_basic_logging()
        return handler(args, config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except ApplianceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
