"""A small document model rendered twice: as Markdown and as a plain HTML twin.

The report is assembled as a list of blocks; both renderers walk the same list, so the two files
always
say the same thing. Image paths are kept relative to the document's folder.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """Rows of already formatted cells; ``bold`` holds (row, column) cells to emphasise."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bold: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    caption: str = ""

    def __post_init__(self) -> None:
        for number, row in enumerate(self.rows):
            if len(row) != len(self.header):
                raise ValueError(
                    f"table row {number} has {len(row)} cells but the header has {len(self.header)}"
                )


@dataclass(frozen=True)
class Image:
    path: str  # relative to the document
    alt: str


Block = Heading | Paragraph | Bullets | Table | Image


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, blocks: list[Block]) -> str:
    """The blocks as GitHub-flavoured Markdown."""
    lines = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines += [f"{'#' * max(2, block.level)} {block.text}", ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [f"*{block.caption}*", ""]
            lines.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(block.header) - 1)) + "|")
            for r, row in enumerate(block.rows):
                cells = [
                    f"**{_md_cell(cell)}**" if (r, c) in block.bold else _md_cell(cell)
                    for c, cell in enumerate(row)
                ]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({block.path})", ""]
        else:
            raise TypeError(f"unknown report block {block!r}")
    return "\n".join(lines).rstrip() + "\n"


_STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; background: #e3f2e1; }
caption { caption-side: top; font-style: italic; text-align: left; padding-bottom: 0.3em; }
img { max-width: 100%; }
"""


def render_html(title: str, blocks: list[Block]) -> str:
    """The blocks as a self-contained HTML page (images referenced by relative path)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(6, max(2, block.level))
            parts.append(f"<h{level}>{esc(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            rows = ["<table>"]
            if block.caption:
                rows.append(f"<caption>{esc(block.caption)}</caption>")
            rows.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.header) + "</tr>")
            for r, row in enumerate(block.rows):
                cells = [
                    f'<td class="best">{esc(cell)}</td>'
                    if (r, c) in block.bold
                    else f"<td>{esc(cell)}</td>"
                    for c, cell in enumerate(row)
                ]
                rows.append("<tr>" + "".join(cells) + "</tr>")
            rows.append("</table>")
            parts.append("\n".join(rows))
        elif isinstance(block, Image):
            parts.append(f'<p><img src="{esc(block.path)}" alt="{esc(block.alt)}"></p>')
        else:
            raise TypeError(f"unknown report block {block!r}")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
