"""A tiny document model (sections of text, tables, images and links) rendered two ways.

`bench report` builds one `Section` list and renders it to self-contained HTML (inline
CSS, images as base64 data URIs, nothing fetched) and to Markdown (images linked as
files), so the two outputs cannot drift apart.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

@dataclass(frozen=True)
class Styled:
    """A table cell drawn with a colour class (verdicts): a CSS class in HTML, bold in Markdown."""

    text: str
    style: str


CellValue = str | Styled


@dataclass(frozen=True)
class Text:
    """A paragraph; text between backticks is code."""

    text: str


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[CellValue, ...], ...]


@dataclass(frozen=True)
class Image:
    """A figure as PNG bytes: written next to the report and inlined into the HTML."""

    file: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class Links:
    """Links to pages written beside this one (the claims index to each claim's page): each page
    is written as STEM.html and STEM.md, and each format links to its own kind."""

    items: tuple[tuple[str, str], ...]  # (text, page stem)


Block = Text | Table | Image | Links


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]

    @property
    def anchor(self) -> str:
        return slug(self.title)


def slug(text: str) -> str:
    """A name safe for files and HTML anchors: `vit (digits)` -> `vit-digits`."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-").lower() or "x"


# --------------------------------------------------------------------------- rendering: HTML

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; margin: 0;
       background: #fafafa; }
main { max-width: 1240px; margin: 0 auto; padding: 16px 24px 48px; background: #fff; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin-top: 32px;
     border-bottom: 2px solid #ddd; padding-bottom: 4px; }
nav { font-size: 13px; margin-bottom: 8px; } nav a { color: #444; margin-right: 12px; }
.scroll { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border: 1px solid #d4d4d4; padding: 4px 7px; text-align: left; vertical-align: top;
         max-width: 420px; }
th { background: #eef0f3; } tr:nth-child(even) td { background: #f7f7f9; }
code { background: #f0f0f0; padding: 1px 4px; border-radius: 3px; font-size: 12.5px; }
figure { margin: 12px 0 24px; } figure img { max-width: 100%; border: 1px solid #e4e4e4; }
figcaption { font-size: 12.5px; color: #555; margin-top: 4px; }
.verdict { font-weight: 600; padding: 1px 6px; border-radius: 3px; color: #fff; }
.verdict-supported { background: #2e7d32; } .verdict-refuted { background: #c62828; }
.verdict-inconclusive { background: #b8860b; } .verdict-not-comparable { background: #6d6d6d; }
.verdict-unreadable { background: #6a1b9a; } .verdict-not-testable { background: #0277bd; }
.verdict-robust { background: #00796b; } .verdict-fragile { background: #ad1457; }
.verdict-unchecked { background: #6d6d6d; }
"""


def _inline_html(text: str) -> str:
    """Escape, then turn `code` into <code>code</code> and newlines into line breaks."""
    escaped = html.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped).replace("\n", "<br>")


def _html_cell(cell: CellValue, tag: str) -> str:
    if isinstance(cell, Styled):
        return f'<{tag}><span class="verdict verdict-{slug(cell.style)}">{html.escape(cell.text)}</span></{tag}>'
    return f"<{tag}>{_inline_html(cell)}</{tag}>"


def _html_block(block: Block) -> str:
    if isinstance(block, Text):
        return f"<p>{_inline_html(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(_html_cell(c, "th") for c in block.columns)
        body = "\n".join("<tr>" + "".join(_html_cell(c, "td") for c in row) + "</tr>" for row in block.rows)
        return f'<div class="scroll"><table><thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody></table></div>'
    if isinstance(block, Links):
        items = "".join(f'<li><a href="{html.escape(stem)}.html">{html.escape(text)}</a></li>' for text, stem in block.items)
        return f"<ul>{items}</ul>"
    data = base64.b64encode(block.png).decode("ascii")
    caption = html.escape(block.caption)
    return (f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_inline_html(block.caption)}</figcaption></figure>")


def render_html(title: str, intro: str, sections: Iterable[Section]) -> str:
    """One self-contained page: the CSS is inline and every figure is a data URI, so the file
    can be mailed or archived alone and opening it fetches nothing."""
    sections = list(sections)
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>\n' + "\n".join(map(_html_block, s.blocks))
        + "</section>" for s in sections
    )
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
            f"<body><main><h1>{html.escape(title)}</h1><p>{_inline_html(intro)}</p><nav>{nav}</nav>\n"
            f"{body}\n</main></body></html>\n")


# --------------------------------------------------------------------------- rendering: Markdown


def _md_cell(cell: CellValue) -> str:
    text = f"**{cell.text}**" if isinstance(cell, Styled) else cell
    return text.replace("|", "\\|").replace("\n", "<br>")


def _md_block(block: Block) -> str:
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Table):
        lines = ["| " + " | ".join(map(_md_cell, block.columns)) + " |",
                 "|" + "---|" * len(block.columns)]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Links):
        return "\n".join(f"- [{text}]({stem}.md)" for text, stem in block.items)
    return f"![{block.caption}]({block.file})\n\n*{block.caption}*"


def render_markdown(title: str, intro: str, sections: Iterable[Section]) -> str:
    """The same content as the HTML; figures are links to the PNG files beside it."""
    parts = [f"# {title}", intro]
    for section in sections:
        parts.append(f"## {section.title}")
        parts.extend(_md_block(b) for b in section.blocks)
    return "\n\n".join(parts) + "\n"
