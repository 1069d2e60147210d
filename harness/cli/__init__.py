"""`drbench` command line. The only place errors become messages and exit codes.

This file assembles `app` from the command modules, which import `harness.cli.common` and never
this package, so there is no import circle, and `main` (the `drbench` console script), which runs
it with command-line mistakes printed as one line. Every module
here imports its heavy dependencies inside the command, so `drbench --help`, the read-side
commands and `validate` start without torch.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from harness.cli import browse, cache, check, compare, data, merge, plan, plot, recipes, report, serve
from harness.cli.common import fail

# Names are the documented interface (README, .ci/run); `--help` lists them in this order.
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("validate", recipes.validate),
    ("plan", plan.plan),
    ("run", recipes.run),
    ("leaderboard", browse.leaderboard),
    ("ls", browse.ls),
    ("export-run", browse.export_run),
    ("merge", merge.merge),
    ("compare", compare.compare),
    ("plot", plot.plot),
    ("check", check.check),
    ("report", report.report),
    ("serve", serve.serve),
)
# Command groups (`drbench cache ls`), listed after the commands.
GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("cache", cache.app),
    ("data", data.app),
)


def _flags_take_no_value() -> None:
    """typer (0.2x, with click 8.2+) shows `<bool>` after every flag, `--help <bool>` included, as
    if it took a value: show nothing after a flag, as click itself does. Left alone if a typer
    release renames the method."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "drbench", False):
        return

    def display_type_rich(self: TyperOption, ctx: object) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    display_type_rich.drbench = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


def _build_app() -> typer.Typer:
    _flags_take_no_value()
    app = typer.Typer(help="Train, evaluate and compare dense retrievers from TOML recipes.",
                      no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    for name, callback in COMMANDS:
        app.command(name)(callback)
    for name, group in GROUPS:
        app.add_typer(group, name=name)
    return app


app = _build_app()


def main(args: list[str] | None = None) -> int:
    """`drbench`: run `app`, but print a command-line mistake (a missing argument, an unknown
    option or command, a value outside its choices) as the one `error:` line every other bad
    input gets, naming the `--help` to read, instead of a usage box. Returns the exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="drbench", standalone_mode=False)
    except typer.Abort:
        return 130
    except typer.TyperException as exc:  # typer's click exceptions: usage errors, bad parameters
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        message = message.replace("Value error, ", "")  # pydantic's prefix on typer's choice errors
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        return fail(message + hint, int(getattr(exc, "exit_code", 2))).exit_code
    return code if isinstance(code, int) else 0


__all__ = ["app", "main"]
