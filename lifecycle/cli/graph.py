"""``lifecycle graph NAME``: a machine's diagram, from the definition the engine runs."""

from __future__ import annotations

import click

from lifecycle.cli import diagrams


@click.command()
@click.argument("name", type=click.Choice(diagrams.CHOICES), metavar="MACHINE")
@click.option("--format", "fmt", type=click.Choice(diagrams.FORMATS), default="mermaid",
              show_default=True, help="Mermaid stateDiagram-v2, or Graphviz DOT.")
def graph(name: str, fmt: str) -> None:
    """Print the diagram of MACHINE: onboarding (or seller), order, dispute, coupon or voucher.

    Arrows read "trigger (who may fire it) [condition]". No database and no Graphviz program
    are needed; render DOT with any Graphviz (dot -Tsvg), Mermaid in Markdown.
    """
    click.echo(diagrams.render(diagrams.name_of(name), fmt), nl=False)
