"""The `huskies` command line."""

from typing import Annotated

import typer

from huskies import __version__

app = typer.Typer(
    name="huskies",
    help="A story-driven development server: agents work your backlog, huskies checks their work.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"huskies {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the huskies version and exit.",
        ),
    ] = False,
) -> None:
    """huskies runs AI coding agents on a backlog and moves each item through the pipeline."""


@app.command()
def demo() -> None:
    """Show the replicated document at work: two nodes converge, forgeries are refused."""
    from huskies.demo import run_demo

    if not run_demo(typer.echo):
        raise typer.Exit(1)
