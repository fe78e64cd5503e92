"""The ``lsc`` command line: one module per command, shared option parsing in :mod:`.options`.

The command line imports the library (``lsc.measure``, ``lsc.pretrain``, ``lsc.train``,
``lsc.experiments``, ...); nothing in the library imports the command line
(docs/design.md, section 0).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence

from ..checks import NonFiniteError
from ..version import __version__
from . import analyze, compare, experiment, init, measure, pretrain, tasks, train

COMMANDS = (measure, init, pretrain, tasks, train, analyze, experiment, compare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsc",
        description="Measure (and make) the Local Stability Condition of deep and recurrent networks: "
        "the spectral radius of every local Jacobian across time and depth.",
    )
    parser.add_argument("--version", action="version", version=f"lsc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from .. import distributed

    shown = warnings.showwarning
    try:
        warnings.showwarning = _one_line(args.command)  # restored below
        spec = getattr(args, "device", None)
        if spec is not None and (distributed.launched() or spec == "auto"):
            # under torchrun: join the process group; cuda means cuda:LOCAL_RANK
            args.device = str(distributed.setup(spec))
        elif spec is not None:
            args.device = str(distributed.select_device(spec))  # a bad name is one clear line, not a traceback
        return int(args.run(args))
    except distributed.DistributedError as exc:
        print(f"lsc {args.command}: distributed run failed: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, NonFiniteError, FileNotFoundError) as exc:
        print(f"lsc {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lsc ... | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (no second traceback at exit flush)
        return 0
    except OSError as exc:  # a file lsc could not read or write: one line naming it
        print(f"lsc {args.command}: error: {_os_message(exc)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        message = _memory_message(exc)
        if message is None:
            raise
        print(f"lsc {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
        distributed.teardown()


def _one_line(command: str) -> Callable[..., None]:
    """How the command line shows a warning: ``lsc COMMAND: warning: MESSAGE``, one line
    on stderr (no file and line of lsc's source)."""

    def show(message: Warning | str, *_: object, **__: object) -> None:
        print(f"lsc {command}: warning: {message}", file=sys.stderr, flush=True)

    return show


def _os_message(exc: OSError) -> str:
    """An OS error as one line: lsc's own messages as they are, others with their file."""
    if exc.filename is None:
        return str(exc)
    return f"{exc.strerror or type(exc).__name__}: {exc.filename}"


def _memory_message(exc: BaseException) -> str | None:
    """An allocation failure as one line with the size asked for; ``None`` for any other error."""
    text = str(exc)
    if not isinstance(exc, MemoryError) and "allocate" not in text and "out of memory" not in text.lower():
        return None
    asked = re.search(r"allocate (\d+) bytes|Tried to allocate ([\d.]+ [KMGT]i?B)", text)
    size = ""
    if asked and asked.group(1):
        size = f" (it asked for {int(asked.group(1)) / 2**30:.1f} GiB)"
    elif asked:
        size = f" (it asked for {asked.group(2)})"
    return (
        f"not enough memory for this size{size}; use a smaller --width, --batch-size or --time-steps "
        "(or a machine with more memory)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
