"""Markdown to HTML for run reports.

A deliberately small converter (headings, paragraphs, ``- `` bullet lists, pipe tables with escaped ``\\|``
and ``:---`` column alignment, images, links (an image inside a link opens the full-size file: a figure
alone in a paragraph spans the column and enlarges on click), inline code, bold) so that reports need no
extra dependency and open in any browser. A heading ending in ``{#id}`` gets that ``id``; with
``anchors=True`` every other heading gets one too (:func:`slug` of its text) so that ``[text](#slug)`` links
to it.
"""

from __future__ import annotations

import html
import re

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
    "text-align:right;vertical-align:top}td:first-child{text-align:left}th{background:#f4f4f4}"
    "img{max-width:100%}td img{width:36em}code{background:#f4f4f4;padding:0 .2em}"
    "p>a>img{display:block;width:100%;height:auto;border:1px solid #eee;cursor:zoom-in}"
    ".paper{color:#555;font-style:italic}"
)


# Column alignment from the separator row: ":---" left, "---:" right, ":---:" centre, "---" the style's.
_ALIGN = {(True, False): "left", (False, True): "right", (True, True): "center"}


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _cell(tag: str, text: str, aligns: list[str], k: int) -> str:
    style = f' style="text-align:{aligns[k]}"' if k < len(aligns) and aligns[k] else ""
    return f"<{tag}{style}>{_inline(text)}</{tag}>"


def slug(text: str) -> str:
    """The anchor of a heading: lower case, runs of other characters than letters and digits as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def markdown_to_html(markdown: str, title: str, *, anchors: bool = False) -> str:
    """Convert the Markdown subset the reports use into a standalone HTML page.

    ``anchors=True`` gives every heading ``id="<slug>"`` (a repeated slug gets ``-2``, ``-3``, ...).
    """
    body: list[str] = []
    lines = markdown.splitlines()
    used: dict[str, int] = {}
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level, text = len(heading.group(1)), heading.group(2)
            explicit = re.fullmatch(r"(.*?)\s*\{#([A-Za-z0-9_-]+)\}", text)
            attribute = ""
            if explicit:
                text = explicit.group(1)
                attribute = f' id="{explicit.group(2)}"'
            elif anchors:
                anchor = slug(text)
                used[anchor] = used.get(anchor, 0) + 1
                anchor = anchor if used[anchor] == 1 else f"{anchor}-{used[anchor]}"
                attribute = f' id="{anchor}"'
            body.append(f"<h{level}{attribute}>{_inline(text)}</h{level}>")
            i += 1
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:].strip())}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        if line.startswith("|"):
            rows, aligns = [], []
            while i < len(lines) and lines[i].startswith("|"):
                row = lines[i].strip()[1:].removesuffix("|")
                cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]
                if all(re.fullmatch(r":?-+:?", c) for c in cells):
                    aligns = [_ALIGN.get((c.startswith(":"), c.endswith(":")), "") for c in cells]
                else:
                    rows.append(cells)
                i += 1

            head, *rest = rows
            body.append(
                "<table><tr>" + "".join(_cell("th", c, aligns, k) for k, c in enumerate(head)) + "</tr>"
            )
            body += [
                "<tr>" + "".join(_cell("td", c, aligns, k) for k, c in enumerate(r)) + "</tr>" for r in rest
            ]
            body.append("</table>")
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not re.match(r"#{1,6} |\||- ", lines[i]):
            paragraph.append(lines[i].strip())
            i += 1
        body.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
