"""The ``hf-emms`` command line.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (called with the parsed namespace, returning an exit code). Adding a command means adding
a module and its name to ``_COMMANDS``; nothing else here changes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from collections.abc import Sequence

from ..errors import HfEmmsError

# Module names (under hf_emms.cli) in the order `hf-emms --help` lists them.
_COMMANDS = ("scan", "rank", "recall", "annotate", "demo", "cache", "install_metric")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-emms",
        description="Which pre-trained checkpoint should you fine-tune? Ranks Hugging Face checkpoints for your "
        "dataset with EMMS, before you spend a GPU-hour on any.",
        epilog="Run `hf-emms COMMAND --help` for the options of one command.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue  # a command not built yet
        module.register(subparsers)
    for sub in subparsers.choices.values():  # a command's own usage goes with its errors (main)
        sub.set_defaults(command_parser=sub)
    return parser


_NEGATIVE_LIST = re.compile(r"-\d+(,-?\d+)*")


def _negative_values(argv: Sequence[str]) -> list[str]:
    """``--layers -1,-2`` as ``--layers=-1,-2``: argparse takes a value that starts with "-" for a flag ("expected one
    argument"), yet counting layers from the end is how people name them."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--layers" and _NEGATIVE_LIST.fullmatch(arg):
            out[-1] = f"--layers={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if extra:  # named with the command's usage, not the top level's "hf-emms [-h] COMMAND ..."
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    shown = warnings.showwarning
    if not os.environ.get("HF_EMMS_DEBUG"):  # a warning is one line for the user, not a line of our source
        warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except HfEmmsError as exc:  # bad input, named with its fix: one line, exit 2
        print(f"hf-emms: error: {_as_flags(_one_line(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hf-emms ... | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 141
    except KeyboardInterrupt:
        print("hf-emms: interrupted; finished work is kept and a re-run resumes from it.", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours or of a library: still one line, the traceback on request
        if os.environ.get("HF_EMMS_DEBUG"):
            raise
        print(f"hf-emms: unexpected error: {type(exc).__name__}: {_one_line(exc)} (set HF_EMMS_DEBUG=1 for the "
              "traceback, and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings' API
    print(f"hf-emms: warning: {_one_line(message).removeprefix('hf-emms ')}", file=file or sys.stderr)


def _as_flags(message: str) -> str:
    """The library's advice names keyword arguments ("Pass label_column="); on the command line they are flags."""
    from ..options import RankSpec

    names = "|".join(sorted(RankSpec.option_names(), key=len, reverse=True))
    return re.sub(rf"(?<![\w.])({names})=(?=[\s.,;)]|$)", lambda m: "--" + m[1].replace("_", "-"), message)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover - `python -m hf_emms.cli`
    sys.exit(main())
