"""``lifecycle graph NAME``: a machine's diagram, from the definition the engine runs."""

from __future__ import annotations

import click

from lifecycle.cli import diagrams, output
from lifecycle.cli.options import json_option


@click.command()
@click.argument("name", type=click.Choice(diagrams.CHOICES), metavar="MACHINE")
@click.option("--format", "fmt", type=click.Choice(diagrams.FORMATS), default="mermaid",
              show_default=True, help="Mermaid stateDiagram-v2, or Graphviz DOT.")
@click.option("--full", is_flag=True,
              help="Every arrow: follow-ups, events that keep the state, each state on its own. "
                   "Without it the order's diagram is the readable view.")
@json_option
def graph(name: str, fmt: str, full: bool, as_json: bool) -> None:
    """Print the diagram of MACHINE: onboarding (or seller), order, dispute, coupon, voucher or message.

    Arrows read "trigger (who may fire it) [condition]". The order's diagram is drawn readable
    by default: the states after shipping in one box, no follow-ups, no arrows that keep the
    state; --full draws every arrow. --json prints the machine as data instead (states, and
    each transition with its roles and the command that fires it). No database and no
    Graphviz program are needed; render DOT with any Graphviz (dot -Tsvg), Mermaid in Markdown.
    """
    if as_json:
        output.echo_json(diagrams.machine_json(diagrams.name_of(name)))
        return
    click.echo(diagrams.render(diagrams.name_of(name), fmt, full=full), nl=False)
