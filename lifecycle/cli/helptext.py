"""The one line a group's ``--help`` gives each command: its help's first sentence, whole.

click shortens a command's help to fit the terminal when it lists a group's commands
(``Orders: place, pay, ship, track, confirm, cancel, release;...``) unless the command has a
``short_help`` of its own, which it wraps instead. `complete` gives each command that has none
the first sentence of its help, so no listing stops mid-sentence.
"""

from __future__ import annotations

import re

import click

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str) -> str:
    """The first sentence of the first paragraph of ``text``, without its full stop; the whole
    paragraph when it has no sentence end."""
    paragraph = " ".join(text.replace("\b", "").strip().split("\n\n")[0].split())
    sentence = _SENTENCE_END.split(paragraph, maxsplit=1)[0]
    return sentence.rstrip(".")


def complete(command: click.Command) -> None:
    """Give ``command`` and every command under it a short help that is a whole sentence."""
    if command.short_help is None and command.help:
        command.short_help = first_sentence(command.help)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            complete(sub)
