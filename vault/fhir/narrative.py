"""Narrative XHTML as FHIR R4 allows it (https://hl7.org/fhir/R4/narrative.html#xhtml).

``text.div`` is shown to people: in the consent page, in partner systems, in an inwoner's
app. A partner that could store ``<script>`` or ``onclick=`` there would run code in every
one of them, so the vault stores only what the spec allows and refuses the rest (422):

- well-formed XML whose root is a ``div`` in the XHTML namespace (Narrative.div);
- only the basic formatting elements of HTML 4.0 chapters 7-11 and 15, ``a``, ``img``
  (invariant txt-1): no ``script``, ``style``, ``form``, ``iframe``, ``object``, ``base``,
  ``link``, ``head``/``body``, no other namespaces (SVG, MathML, xlink);
- only their plain attributes: no event attributes (``on*``), nothing outside XHTML but
  ``xml:lang``;
- some non-whitespace content (invariant txt-2);
- no document type, entity declarations or processing instructions (XML entity expansion);
- links only to ``http(s)``, ``mailto``, ``tel``, a fragment or a relative (FHIR) reference,
  never ``javascript:``/``data:``/``vbscript:``; images only from the resource itself
  (``#id``) or an inline ``data:image/...`` of a raster type: an image fetched from
  elsewhere would tell its owner who reads the record (the spec's "no external references");
- ``style`` attributes only without ``url(``, ``expression(``, ``@import``, escapes or
  comments (the spec allows "internally contained style attributes", nothing fetched).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from vault.kernel.errors import Unprocessable

__all__ = ["check_narratives", "narrative_problem"]

XHTML = "{http://www.w3.org/1999/xhtml}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_ELEMENTS = frozenset(
    [
        "a",
        "abbr",
        "acronym",
        "address",
        "b",
        "bdo",
        "big",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "ol",
        "p",
        "pre",
        "q",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "ul",
        "var",
    ]
)
_COMMON_ATTRIBUTES = frozenset(["id", "class", "style", "title", "lang", "dir"])
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "name", "hreflang", "rel", "rev", "type"}),
    "img": frozenset({"src", "alt", "width", "height", "border", "align"}),
    "table": frozenset(
        {"summary", "width", "border", "frame", "rules", "cellspacing", "cellpadding"}
    ),
    "col": frozenset({"span", "width", "align", "valign", "char", "charoff"}),
    "colgroup": frozenset({"span", "width", "align", "valign", "char", "charoff"}),
    "td": frozenset(
        {"abbr", "axis", "headers", "scope", "rowspan", "colspan", "align", "valign", "nowrap"}
    ),
    "th": frozenset(
        {"abbr", "axis", "headers", "scope", "rowspan", "colspan", "align", "valign", "nowrap"}
    ),
    "tr": frozenset({"align", "valign", "char", "charoff"}),
    "thead": frozenset({"align", "valign"}),
    "tbody": frozenset({"align", "valign"}),
    "tfoot": frozenset({"align", "valign"}),
    "ol": frozenset({"start", "type", "compact"}),
    "ul": frozenset({"type", "compact"}),
    "li": frozenset({"type", "value"}),
    "blockquote": frozenset({"cite"}),
    "q": frozenset({"cite"}),
    "ins": frozenset({"cite", "datetime"}),
    "del": frozenset({"cite", "datetime"}),
    "p": frozenset({"align"}),
    "div": frozenset({"align"}),
    "hr": frozenset({"align", "width", "size", "noshade"}),
}
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_IMAGE_DATA = re.compile(r"data:image/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=\s]*\Z")
# Stripped before a scheme is read: browsers ignore them inside "java\tscript:".
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_STYLE_BANNED = re.compile(r"url\s*\(|expression|@|\\|/\*|javascript|behavior|binding", re.I)
_DECLARATIONS = re.compile(r"<!|<\?")
MAX_NARRATIVE_CHARS = 1_000_000


def _link_problem(value: str, *, image: bool) -> str | None:
    compact = _INVISIBLE.sub("", value)
    if image:
        if compact.startswith("#") or _IMAGE_DATA.match(value.strip()):
            return None
        return "an img src must be '#id' or an inline data:image (no external images)"
    if compact.startswith("//"):
        return "a link must name its scheme (http or https)"
    scheme = _SCHEME.match(compact)
    if scheme is not None and scheme.group(1).lower() not in _LINK_SCHEMES:
        return f"a link may not use '{scheme.group(1)[:20].lower()}:'"
    return None


def narrative_problem(div: str) -> str | None:
    """What is wrong with ``div`` as FHIR narrative, or None when it may be stored."""
    if len(div) > MAX_NARRATIVE_CHARS:
        return "the narrative is too long"
    if _DECLARATIONS.search(div):
        return "the narrative may not hold a document type, declarations or processing instructions"
    try:
        # Safe with the standard parser: declarations (entities, DTDs) were refused above.
        root = ET.fromstring(div)  # noqa: S314
    except (ET.ParseError, ValueError):
        return "the narrative is not well-formed XHTML"
    if root.tag != f"{XHTML}div":
        return 'the narrative must be one <div xmlns="http://www.w3.org/1999/xhtml">'
    if not "".join(root.itertext()).strip() and root.find(f".//{XHTML}img") is None:
        return "the narrative has no content (txt-2)"
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.tag.startswith(XHTML):
            return "the narrative may hold XHTML elements only"
        name = element.tag[len(XHTML) :]
        if name not in _ELEMENTS:
            return f"the element <{name[:20]}> is not allowed in a narrative (txt-1)"
        allowed = _ATTRIBUTES.get(name, frozenset())
        for attribute, value in element.attrib.items():
            if attribute == XML_LANG:
                continue
            if attribute not in _COMMON_ATTRIBUTES and attribute not in allowed:
                return f"the attribute '{attribute[:30]}' is not allowed on <{name}> (txt-1)"
            problem = None
            if attribute in ("href", "cite"):
                problem = _link_problem(value, image=False)
            elif attribute == "src":
                problem = _link_problem(value, image=True)
            elif attribute == "style" and _STYLE_BANNED.search(value):
                problem = "a style attribute may not load or run anything"
            if problem is not None:
                return problem
    return None


def _narratives(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every ``text.div`` of a resource and of the resources it contains."""
    if not isinstance(node, dict):
        return
    text = node.get("text")
    if isinstance(text, dict) and "div" in text:
        yield f"{path}.text.div", text["div"]
    contained = node.get("contained")
    if isinstance(contained, list):
        for index, inner in enumerate(contained):
            yield from _narratives(inner, f"{path}.contained[{index}]")


def check_narratives(resource_type: str, data: dict[str, Any]) -> None:
    """Raise 422 when a narrative of ``data`` is not FHIR narrative XHTML."""
    for where, div in _narratives(data, resource_type):
        problem = narrative_problem(div) if isinstance(div, str) else "must be a string"
        if problem is not None:
            raise Unprocessable(f"{where}: {problem}", expression=[where], code="invariant")
