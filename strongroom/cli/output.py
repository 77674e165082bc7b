"""What the CLI prints: the reference's emoji style with colour on a terminal, plain lines otherwise (or ``--plain``).

Everything goes to stderr except results a script consumes (lists, revealed values), which go to stdout.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape


class Output:
    def __init__(self, plain: bool | None = None) -> None:
        self.fancy = not plain and sys.stderr.isatty()
        self._err = Console(stderr=True, highlight=False, no_color=not self.fancy, emoji=False)
        self._out = Console(highlight=False, no_color=not self.fancy, emoji=False, soft_wrap=True)

    def _say(self, emoji: str, text: str, style: str = "") -> None:
        if self.fancy:
            body = f"[{style}]{escape(text)}[/{style}]" if style else escape(text)
            self._err.print(f"{emoji} {body}")
        else:
            print(text, file=sys.stderr, flush=True)

    def step(self, text: str) -> None:
        self._say("⇢", text, "cyan")

    def info(self, emoji: str, text: str) -> None:
        self._say(emoji, text)

    def success(self, text: str) -> None:
        self._say("🔑", text, "bold green")

    def warn(self, text: str) -> None:
        self._say("⚠️ ", "warning: " + text if not self.fancy else text, "bold yellow")

    def error(self, text: str) -> None:
        self._say("❌", "error: " + text if not self.fancy else text, "bold red")

    def question(self, emoji: str, text: str) -> str:
        """A prompt's text: ``? 👉 Confirm …`` on a terminal, plain otherwise."""
        return f"? {emoji} {text}" if self.fancy else text

    def result(self, text: str) -> None:
        """A line of machine-consumable output on stdout."""
        print(text, flush=True)

    def table(self, rows: list[tuple[Any, ...]], headers: tuple[str, ...]) -> None:
        if self.fancy:
            from rich.table import Table

            t = Table(*headers, box=None, header_style="bold")
            for r in rows:
                t.add_row(*(escape(str(c)) for c in r))
            self._out.print(t)
        else:
            for r in rows:
                print("\t".join(str(c) for c in r), flush=True)
