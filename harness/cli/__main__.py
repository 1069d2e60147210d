"""`python -m harness.cli`: the `drbench` console script without installing it."""

from __future__ import annotations

import os

import sys

from harness.cli import main as cli_main


def main() -> None:
    """Run the CLI; tokenizers' fork warning is noise for a command-line run, so it is off by default."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(cli_main())


if __name__ == "__main__":  # pragma: no cover
    main()
