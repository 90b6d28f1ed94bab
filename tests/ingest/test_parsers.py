"""The document parsers: structure, titles, limits and hostile input, per file type.

Every sample is built in code (tests/ingest/parsing_samples.py); the eight demo documents
are parsed as they ship. No database is needed.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest
from docx.enum.text import WD_BREAK
from docx.oxml import parse_xml

from ingest.parsing.base import Block, BlockKind, ParsedDocument, ParseError, ParseLimits
from ingest.parsing.registry import PARSERS, parse_document, parser_for
from tests.ingest.parsing_samples import (
    Line,
    aes256_encrypted_pdf,
    docx_bytes,
    encrypted,
    para,
    pdf_bytes,
    zip_bytes,
)

DEMO = Path(__file__).resolve().parents[2] / "kb" / "demo" / "documents"
H, P, LI, ROW, CODE = (
    BlockKind.HEADING,
    BlockKind.PARAGRAPH,
    BlockKind.LIST_ITEM,
    BlockKind.TABLE_ROW,
    BlockKind.CODE,
)


def parse(data: bytes | str, file_type: str, **limits: Any) -> ParsedDocument:
    raw = data.encode() if isinstance(data, str) else data
    return parse_document(io.BytesIO(raw), file_type=file_type, limits=ParseLimits(**limits))


def shape(document: ParsedDocument) -> list[tuple[BlockKind, int, str]]:
    return [(block.kind, block.level, block.text) for block in document.blocks]


def texts(document: ParsedDocument, kind: BlockKind) -> list[str]:
    return [block.text for block in document.blocks if block.kind is kind]


def assert_invariants(document: ParsedDocument) -> None:
    for block in document.blocks:
        assert block.text and block.text == block.text.strip(), block
        if block.kind is not CODE:
            assert "  " not in block.text and "\n" not in block.text, block


# --- registry -----------------------------------------------------------------------------


def test_every_file_type_has_a_parser_and_unknown_types_are_refused() -> None:
    assert {"txt", "md", "html", "htm", "pdf", "docx"} <= set(PARSERS)
    assert parser_for("htm") is parser_for("html")
    assert parser_for("PDF") is PARSERS["pdf"]
    with pytest.raises(ParseError, match="cannot read files of type 'xls'"):
        parse_document(io.BytesIO(b"x"), file_type="xls")


def test_parse_document_reads_from_the_start_with_default_limits() -> None:
    stream = io.BytesIO(b"Hello there.")
    stream.seek(5)
    assert parse_document(stream, file_type="txt").text == "Hello there."


# --- txt ----------------------------------------------------------------------------------

TXT = """\
USER GUIDE
==========

This paragraph is
hard-wrapped over   three
lines.

Installing
----------

IMPORTANT NOTES

Steps:

1. Download the file.
2. Run it: it asks
   for a folder.
- a bullet
  - a nested bullet
    continued here
* another bullet
• a round bullet

    def main():
        return 1

Not a heading line.
Just text in ALL CAPS? NO, IT HAS MORE LINES.
"""


def test_txt_structure() -> None:
    document = parse(TXT, "txt")

    assert shape(document) == [
        (H, 1, "USER GUIDE"),
        (P, 0, "This paragraph is hard-wrapped over three lines."),
        (H, 2, "Installing"),
        (H, 2, "IMPORTANT NOTES"),
        (P, 0, "Steps:"),
        (LI, 1, "1. Download the file."),
        (LI, 1, "2. Run it: it asks for a folder."),
        (LI, 1, "a bullet"),
        (LI, 2, "a nested bullet continued here"),
        (LI, 1, "another bullet"),
        (LI, 1, "a round bullet"),
        (CODE, 0, "def main():\n    return 1"),
        (P, 0, "Not a heading line. Just text in ALL CAPS? NO, IT HAS MORE LINES."),
    ]
    assert document.title == "USER GUIDE"
    assert document.warnings == []
    assert document.page_count is None


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_txt_with_windows_or_old_mac_line_endings(newline: str) -> None:
    text = newline.join(["Title", "=====", "", "Two wrapped", "lines.", "", "- item"])
    assert shape(parse(text, "txt")) == [
        (H, 1, "Title"),
        (P, 0, "Two wrapped lines."),
        (LI, 1, "item"),
    ]


def test_txt_without_a_leading_heading_has_no_title() -> None:
    assert parse("Just a note.\n\nTITLE LATER\n", "txt").title is None


def test_txt_indented_as_a_whole_is_not_code() -> None:
    document = parse("    An indented note\n    over two lines.\n", "txt")
    assert shape(document) == [(P, 0, "An indented note over two lines.")]


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n  \n", b"\x00\x00", b"\xef\xbb\xbf \n"])
def test_empty_or_whitespace_only_text_is_refused(content: bytes) -> None:
    with pytest.raises(ParseError, match="^no text found in the document$"):
        parse(content, "txt")


# --- decoding (txt, md, html) -------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_western_single_byte_text_decodes_correctly(encoding: str) -> None:
    text = "Café crème brûlée, naïve façade.\n\nZürich ist schön; El niño está aquí."

    document = parse(text.encode(encoding), "txt")

    assert document.text == text
    assert document.warnings == ["text decoded as cp1252"]


def test_cp1252_punctuation_decodes_correctly() -> None:
    document = parse("“Smart quotes” – and the € sign…".encode("cp1252"), "md")
    assert document.text == "“Smart quotes” – and the € sign…"


def test_invalid_bytes_do_not_crash() -> None:
    document = parse(b"Valid start \x81\x8d\x8f\x90\x9d\xff\xfe end", "txt")
    assert document.text.startswith("Valid start")
    assert document.text.endswith("end")
    assert len(document.warnings) == 1


@pytest.mark.parametrize(("codec", "label"), [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16")])
def test_utf16_with_bom(codec: str, label: str) -> None:
    raw = "Überschrift\n===========\n\nGrüße aus Köln.".encode(codec)
    if codec == "utf-16-be":
        raw = b"\xfe\xff" + raw

    document = parse(raw, "txt")

    assert shape(document) == [(H, 1, "Überschrift"), (P, 0, "Grüße aus Köln.")]
    assert document.warnings == [f"text decoded as {label}"]


def test_utf8_bom_is_dropped_without_a_warning() -> None:
    document = parse("\ufeff# Title\n\nBody".encode(), "md")
    assert document.title == "Title"
    assert document.warnings == []


def test_nul_bytes_are_removed() -> None:
    document = parse(b"Hel\x00lo\x00 world.\n\n<p>x</p>", "txt")
    assert document.blocks[0].text == "Hello world."
    html = parse(b"<p>Nu\x00ll</p>", "html")
    assert html.text == "Null"


def test_html_declared_charset_is_used_for_non_utf8_bytes() -> None:
    raw = '<html><head><meta charset="iso-8859-1"><title>Ré</title></head><body><p>Crème</p>'
    document = parse(raw.encode("latin-1"), "html")
    assert document.title == "Ré"
    assert document.text == "Crème"
    assert document.warnings == ["text decoded as cp1252"]


# --- markdown -----------------------------------------------------------------------------

MARKDOWN = """\
---
title: Front matter title
tags: [a, b]
---
Intro paragraph with **bold**, _emphasis_, `code`, a [link](https://example.com)
and an ![image](pic.png) wrapped over two lines.

# Guide

Setext heading
--------------

### Lists

- one
- two
  - two point one
    1. deep numbered
- three

3. third
4. fourth

| Plan | Price |
|------|------:|
| Starter | $19 |
| Growth | $59 |

> A quoted
> remark.

```python
def f():
    return  1
```

<div><script>alert("x")</script><p>Raw <b>HTML</b> block</p></div>

Text with inline <script>steal()</script> script.<br>After a break.
"""


def test_markdown_structure() -> None:
    document = parse(MARKDOWN, "md")

    assert shape(document) == [
        (P, 0, "Intro paragraph with bold, emphasis, code, a link and an wrapped over two lines."),
        (H, 1, "Guide"),
        (H, 2, "Setext heading"),
        (H, 3, "Lists"),
        (LI, 1, "one"),
        (LI, 1, "two"),
        (LI, 2, "two point one"),
        (LI, 3, "1. deep numbered"),
        (LI, 1, "three"),
        (LI, 1, "3. third"),
        (LI, 1, "4. fourth"),
        (ROW, 0, "Plan | Price"),
        (ROW, 0, "Starter | $19"),
        (ROW, 0, "Growth | $59"),
        (P, 0, "A quoted remark."),
        (CODE, 0, "def f():\n    return  1"),
        (P, 0, "Raw HTML block"),
        (P, 0, "Text with inline script. After a break."),
    ]
    assert document.title == "Guide"
    assert "alert" not in document.text and "steal" not in document.text


def test_markdown_title_falls_back_to_front_matter_then_none() -> None:
    assert parse("---\ntitle: 'From YAML'\n---\n## Sub\n\nText", "md").title == "From YAML"
    assert parse("## Only a subheading\n\nText", "md").title is None


# --- html ---------------------------------------------------------------------------------

HTML = """\
<!DOCTYPE html>
<html><head><title>  Page &amp; Title </title><style>body { color: red }</style>
<script>var secret = "head script";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
Loose text in the body.
<h1>Main <em>heading</em></h1>
<p>First   paragraph,
   with a line break<br>and an entity: caf&eacute; &ndash; &#169;.</p>
<div>Text directly in a div. <span>Inline span.</span><p>A paragraph in it.</p>Tail text.</div>
<h2>Lists</h2>
<ul>
  <li>Alpha</li>
  <li>Beta
    <ol start="4"><li>Four</li><li><p>Five</p><p>continued</p></li></ol>
  </li>
</ul>
<table>
  <thead><tr><th>Name</th><th>Value</th></tr></thead>
  <tbody><tr><td>a</td><td><b>1</b></td></tr><tr><td colspan="2">wide</td></tr></tbody>
</table>
<pre><code>line 1
    indented line 2
</code></pre>
<blockquote><p>Quoted words.</p></blockquote>
<h3 hidden>Hidden heading</h3>
<div style="display: none">Hidden div</div>
<footer>Copyright footer</footer>
</body></html>
"""


def test_html_structure() -> None:
    document = parse(HTML, "html")

    assert shape(document) == [
        (P, 0, "Loose text in the body."),
        (H, 1, "Main heading"),
        (P, 0, "First paragraph, with a line break and an entity: café – ©."),
        (P, 0, "Text directly in a div. Inline span."),
        (P, 0, "A paragraph in it."),
        (P, 0, "Tail text."),
        (H, 2, "Lists"),
        (LI, 1, "Alpha"),
        (LI, 1, "Beta"),
        (LI, 2, "4. Four"),
        (LI, 2, "5. Five continued"),
        (ROW, 0, "Name | Value"),
        (ROW, 0, "a | 1"),
        (ROW, 0, "wide"),
        (CODE, 0, "line 1\n    indented line 2"),
        (P, 0, "Quoted words."),
    ]
    assert document.title == "Page & Title"
    assert_invariants(document)


def test_html_title_falls_back_to_the_first_h1() -> None:
    assert parse("<h2>Sub</h2><h1>First H1</h1><h1>Second</h1>", "html").title == "First H1"
    assert parse("<p>No headings</p>", "html").title is None


HOSTILE_HTML = b"""\
<html><head><script>alert('in head')</script></head><body onload="evil()">
<p>Visible <script>document.write('SCRIPT-TEXT')</script>words
<style>.x { content: 'STYLE-TEXT' }</style>
<noscript>NOSCRIPT-TEXT</noscript><template><p>TEMPLATE-TEXT</p></template>
<!-- COMMENT-TEXT --><![CDATA[ CDATA-TEXT ]]>
<p>unclosed <b>bold <i>italic
<table><tr><td>cell one<td>cell two<tr><td>row two</table>
<li>orphan item</li>
<svg><text>SVG-TEXT</text></svg>
<img src=x onerror="alert('IMG')">
</div></div></span>stray end tags
<script>
"""


def test_hostile_html_is_contained() -> None:
    document = parse(HOSTILE_HTML, "html")

    text = document.text
    for planted in ("SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "COMMENT", "SVG", "alert", "evil"):
        assert planted not in text
    assert ["cell one | cell two", "row two"] == texts(document, ROW)
    assert "Visible words" in text and "stray end tags" in text
    assert texts(document, LI) == ["orphan item"]
    assert_invariants(document)


def test_html_entities_from_a_dtd_are_never_resolved() -> None:
    raw = (
        b'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd">'
        b'<!ENTITY lol "LOL">]><html><body><p>a &xxe; b &lol;</p></body></html>'
    )
    text = parse(raw, "html").text
    assert "root:" not in text and "LOL" not in text


def test_deeply_nested_html_does_not_crash() -> None:
    document = parse(b"<p>before</p>" + b"<div>" * 5000 + b"deep", "html")
    assert document.blocks[0].text == "before"
    assert any("nested more than 2,048 levels" in warning for warning in document.warnings)


@pytest.mark.parametrize(
    "markup", [b"<script>only()</script>", b"<!-- nothing -->", b"", b"<html></html>"]
)
def test_html_without_visible_text_is_refused(markup: bytes) -> None:
    with pytest.raises(ParseError, match="^no text found in the document$"):
        parse(markup, "html")


# --- pdf ----------------------------------------------------------------------------------

REPORT = [
    [
        Line("Quarterly Report", 20, bold=True),
        *para(
            "This paragraph is long enough to wrap, so it goes on for quite a few words",
            "and then ends on its second line.",
        ),
        Line("Revenue", 15, bold=True, gap=11),
        *para("Revenue grew by ten percent over the quarter before."),
        Line("- first bullet", gap=11),
        Line("- second bullet that is long enough to wrap onto"),
        Line("the next line."),
        Line("Details", 11, bold=True, gap=11),
        Line("Regular text after a bold heading."),
        Line("ACME Report 2026 - page 1", 8, gap=40),
    ],
    [
        Line("Costs", 15, bold=True),
        *para("Costs fell by a small amount.", "Nobody complained."),
        Line("ACME Report 2026 - page 2", 8, gap=40),
    ],
    [
        Line("Page 3", 8),
        *para("The last page says (almost) nothing."),
        Line("ACME Report 2026 - page 3", 8, gap=40),
    ],
]


def test_pdf_structure_and_pages() -> None:
    document = parse(pdf_bytes(REPORT, title="Report 2026"), "pdf")

    assert [(b.kind, b.level, b.text, b.page) for b in document.blocks] == [
        (H, 1, "Quarterly Report", 1),
        (
            P,
            0,
            "This paragraph is long enough to wrap, so it goes on for quite a few words "
            "and then ends on its second line.",
            1,
        ),
        (H, 2, "Revenue", 1),
        (P, 0, "Revenue grew by ten percent over the quarter before.", 1),
        (LI, 1, "first bullet", 1),
        (LI, 1, "second bullet that is long enough to wrap onto the next line.", 1),
        (H, 3, "Details", 1),
        (P, 0, "Regular text after a bold heading.", 1),
        (H, 2, "Costs", 2),
        (P, 0, "Costs fell by a small amount. Nobody complained.", 2),
        (P, 0, "The last page says (almost) nothing.", 3),
    ]
    assert document.title == "Report 2026"
    assert document.page_count == 3


def test_pdf_title_falls_back_to_the_first_level_one_heading() -> None:
    assert parse(pdf_bytes(REPORT), "pdf").title == "Quarterly Report"


@pytest.mark.parametrize("placeholder", ["Microsoft Word - q3.docx", "Untitled", "scan.pdf"])
def test_pdf_placeholder_titles_are_ignored(placeholder: str) -> None:
    assert parse(pdf_bytes(REPORT, title=placeholder), "pdf").title == "Quarterly Report"


def test_pdf_with_only_paragraphs() -> None:
    document = parse(pdf_bytes([para("Plain text.", "More plain text.")]), "pdf")
    assert [(b.kind, b.page) for b in document.blocks] == [(P, 1)]


def test_encrypted_pdf_is_refused() -> None:
    locked = encrypted(pdf_bytes(REPORT), user_password="secret", owner_password="owner")
    with pytest.raises(ParseError, match="^the PDF is encrypted; remove the password and upload"):
        parse(locked, "pdf")


def test_aes_encrypted_pdf_is_refused_as_encrypted() -> None:
    with pytest.raises(ParseError, match="^the PDF is encrypted; remove the password"):
        parse(aes256_encrypted_pdf(), "pdf")


def test_pdf_encrypted_with_an_empty_user_password_is_read() -> None:
    restricted = encrypted(pdf_bytes(REPORT), user_password="", owner_password="owner")
    assert parse(restricted, "pdf").blocks[0].text == "Quarterly Report"


def test_pdf_page_cap() -> None:
    with pytest.raises(ParseError, match="^the PDF has 3 pages, more than the limit of 2;"):
        parse(pdf_bytes(REPORT), "pdf", max_pdf_pages=2)


def test_pdf_decompression_bomb_is_refused() -> None:
    bomb = pdf_bytes(REPORT, compressed_padding=400_000)
    assert len(bomb) < 10_000

    with pytest.raises(ParseError, match="expands to more than 100,000 bytes.*decompression bomb"):
        parse(bomb, "pdf", max_pdf_stream_bytes=100_000)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"%PDF-1.7\n" + b"\x00garbage\xff" * 50,
        lambda data: b"%PDF-",
        lambda data: b"",
        _truncated,
        lambda data: data.replace(b"/Type /Pages", b"/Type /Pagez").replace(b"xref", b"xrfe"),
    ],
    ids=["garbage", "header-only", "empty", "truncated", "broken-structure"],
)
def test_damaged_pdf_is_refused_with_one_message(damage) -> None:
    with pytest.raises(ParseError, match="^the PDF is damaged and cannot be read$"):
        parse(damage(pdf_bytes(REPORT)), "pdf")


def test_pdf_without_text_suggests_a_scan() -> None:
    with pytest.raises(ParseError, match=r"^no text found in the document \(is it a scanned PDF"):
        parse(pdf_bytes([[], []]), "pdf")


# --- docx ---------------------------------------------------------------------------------


def _policy(document) -> None:
    document.core_properties.title = ""
    document.add_paragraph("Travel Policy", style="Title")
    document.add_heading("Scope", level=1)
    document.add_paragraph("This policy   applies to everyone.")
    document.add_paragraph("First bullet", style="List Bullet")
    document.add_paragraph("Nested bullet", style="List Bullet 2")
    document.add_paragraph("Step one", style="List Number")
    document.add_paragraph("Step two", style="List Number")
    document.add_paragraph("1. Typed numbering")
    table = document.add_table(rows=3, cols=3)
    for row, values in [(0, ["Grade", "Hotel", "Flight"]), (1, ["A", "4*", "Business"])]:
        for column, value in enumerate(values):
            table.cell(row, column).text = value
    merged = table.cell(2, 0).merge(table.cell(2, 2))
    merged.text = "Exceptions need approval"
    document.add_heading("Claims", level=2)
    run = document.add_paragraph("Submit within ").add_run("30 days.")
    run.add_break(WD_BREAK.LINE)
    document.add_heading("Deep", level=4)
    document.add_paragraph("   ")


def test_docx_structure() -> None:
    document = parse(docx_bytes(_policy), "docx")

    assert shape(document) == [
        (H, 1, "Travel Policy"),
        (H, 1, "Scope"),
        (P, 0, "This policy applies to everyone."),
        (LI, 1, "First bullet"),
        (LI, 2, "Nested bullet"),
        (LI, 1, "1. Step one"),
        (LI, 1, "2. Step two"),
        (LI, 1, "1. Typed numbering"),
        (ROW, 0, "Grade | Hotel | Flight"),
        (ROW, 0, "A | 4* | Business"),
        (ROW, 0, "Exceptions need approval"),
        (H, 2, "Claims"),
        (P, 0, "Submit within 30 days."),
        (H, 4, "Deep"),
    ]
    assert document.title == "Travel Policy"


def test_docx_reads_tracked_insertions_and_skips_deletions() -> None:
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'

    def build(document) -> None:
        paragraph = document.add_paragraph("Kept ")
        paragraph._p.append(
            parse_xml(
                f'<w:del {w} w:id="1" w:author="A"><w:r><w:delText>gone </w:delText></w:r></w:del>'
            )
        )
        paragraph._p.append(
            parse_xml(f'<w:ins {w} w:id="2" w:author="A"><w:r><w:t>inserted</w:t></w:r></w:ins>')
        )

    assert parse(docx_bytes(build), "docx").text == "Kept inserted"


def test_docx_title_comes_from_core_properties_first() -> None:
    def build(document) -> None:
        document.core_properties.title = "From Properties"
        document.add_heading("Body heading", level=1)

    assert parse(docx_bytes(build), "docx").title == "From Properties"


def test_docx_title_falls_back_to_the_first_heading_1() -> None:
    def build(document) -> None:
        document.core_properties.title = ""
        document.add_paragraph("Intro.")
        document.add_heading("Heading One", level=1)

    assert parse(docx_bytes(build), "docx").title == "Heading One"


def test_empty_docx_is_refused() -> None:
    with pytest.raises(ParseError, match="^no text found in the document$"):
        parse(docx_bytes(lambda document: None), "docx")


def _docx_with(**extra: bytes) -> bytes:
    """A real Word document with extra ZIP entries added."""
    source = zipfile.ZipFile(io.BytesIO(docx_bytes(lambda d: d.add_paragraph("Hello."))))
    entries = {info.filename: source.read(info) for info in source.infolist()}
    return zip_bytes({**entries, **extra})


def test_normal_docx_with_large_media_passes_the_zip_checks() -> None:
    incompressible = random.Random(0).randbytes(2 * 1024 * 1024)  # like a photo
    assert parse(_docx_with(**{"word/media/photo.png": incompressible}), "docx").text == "Hello."


def test_docx_zip_bomb_ratio_is_refused() -> None:
    bomb = _docx_with(**{"word/media/bomb.bin": b"\x00" * (8 * 1024 * 1024)})
    assert len(bomb) < 100_000

    with pytest.raises(
        ParseError, match=r"^the Word document looks like a zip bomb: word/media/bomb"
    ):
        parse(bomb, "docx")


def test_docx_with_too_many_entries_is_refused() -> None:
    many = _docx_with(**{f"word/media/{index}.xml": b"<x/>" for index in range(1000)})
    with pytest.raises(
        ParseError, match=r"zip bomb: it contains 1,0\d\d files, more than .* 1,000"
    ):
        parse(many, "docx")


def test_docx_declared_uncompressed_total_is_capped() -> None:
    with pytest.raises(ParseError, match="zip bomb: its files expand to .* more than the limit"):
        parse(_docx_with(), "docx", max_zip_uncompressed_bytes=10_000)


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04 not really a zip",
        b"",
        zip_bytes({"word/document.xml": b"<w:document><unclosed"}),
        zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"}),
    ],
    ids=["bad-zip", "empty", "bad-xml", "no-relationships"],
)
def test_damaged_docx_is_refused(content: bytes) -> None:
    with pytest.raises(ParseError, match="^the Word document is damaged and cannot be read$"):
        parse(content, "docx")


# --- max_chars for every type -------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_type", "content"),
    [
        ("txt", b"word " * 40),
        ("md", b"# Title\n\n" + b"word " * 40),
        ("html", b"<p>" + b"word " * 40 + b"</p>"),
        ("pdf", pdf_bytes([para("word " * 15, "word " * 15)])),
        ("docx", docx_bytes(lambda document: document.add_paragraph("word " * 40))),
    ],
)
def test_text_beyond_max_chars_is_refused(file_type: str, content: bytes) -> None:
    assert parse(content, file_type, max_chars=1_000).blocks

    with pytest.raises(ParseError, match="^the document has more than 100 characters of text"):
        parse(content, file_type, max_chars=100)


# --- the demo documents -------------------------------------------------------------------


def parse_demo(name: str) -> ParsedDocument:
    path = DEMO / name
    with path.open("rb") as stream:
        return parse_document(stream, file_type=path.suffix.lstrip("."))


@pytest.mark.parametrize("name", sorted(path.name for path in DEMO.iterdir()))
def test_every_demo_document_parses_cleanly(name: str) -> None:
    document = parse_demo(name)

    assert document.title
    assert document.warnings == []
    assert sum(block.kind is H for block in document.blocks) >= 4
    assert_invariants(document)


def _heading_parents(blocks: list[Block]) -> dict[str, list[str]]:
    """Each heading's text mapped to the texts of the headings above it."""
    path: list[Block] = []
    parents = {}
    for block in blocks:
        if block.kind is H:
            path = [*[above for above in path if above.level < block.level], block]
            parents[block.text] = [above.text for above in path[:-1]]
    return parents


def test_demo_markdown() -> None:
    document = parse_demo("billing-and-refunds.md")

    assert document.title == "Billing and Refunds"
    parents = _heading_parents(document.blocks)
    assert parents["Enterprise plans"] == ["Billing and Refunds", "Refunds"]
    assert (H, 3, "Enterprise plans") in shape(document)
    rows = texts(document, ROW)
    assert "Monthly billing | $19 / month | $59 / month | Not available" in rows
    assert not any(set(row) <= set("|- ") for row in rows)  # no |---| separator rows
    assert "1. Sign in as the workspace Owner." in texts(document, LI)


def test_demo_text() -> None:
    document = parse_demo("api-and-webhooks.txt")

    assert document.title == "LEDGERLY API AND WEBHOOKS GUIDE"
    assert (H, 1, "RATE LIMITS") in shape(document)
    assert (H, 2, "Creating a key") in shape(document)
    assert (
        '3. Enter a name (for example "Warehouse sync") and choose a scope: read-only or '
        "read-write." in texts(document, LI)
    )
    assert any(
        code.startswith("Plan          Requests per minute") for code in texts(document, CODE)
    )


def test_demo_html() -> None:
    document = parse_demo("team-roles-and-permissions.html")

    assert document.title == "Team Roles and Permissions - Ledgerly Help Center"
    assert (H, 1, "Team Roles and Permissions") in shape(document)
    assert (H, 3, "Emergency bypass") in shape(document)
    rows = texts(document, ROW)
    assert rows[0] == "Action | Owner | Admin | Accountant | Viewer"
    assert "Send invoices | Yes | Yes* | Yes* | No" in rows
    assert "1. Go to Settings > Workflows > Approvals and click New rule." in texts(document, LI)


def test_demo_docx() -> None:
    document = parse_demo("security-and-sso.docx")

    assert document.title == "Security and Single Sign-On"
    assert (H, 2, "Single sign-on (SSO)") in shape(document)
    assert (H, 3, "Supported identity providers") in shape(document)
    assert texts(document, ROW)[0] == "Region | Data center location | Available on"
    assert len(texts(document, ROW)) >= 3
    assert len(texts(document, LI)) >= 10


def test_demo_pdf() -> None:
    document = parse_demo("release-notes-2026.pdf")

    assert document.title == "Ledgerly Release Notes 2026"
    assert document.page_count == 3
    assert all(block.page is not None for block in document.blocks)
    assert {block.page for block in document.blocks} == {1, 2, 3}
    page_two = [block for block in document.blocks if block.page == 2]
    assert (H, 2, "Version 4.2 (March 2026)") == (
        page_two[0].kind,
        page_two[0].level,
        page_two[0].text,
    )
    assert not any("page 2" in block.text for block in document.blocks)  # running footer
    assert "Column mapping templates did not remember the selected date format." in [
        block.text for block in page_two if block.kind is LI
    ]
