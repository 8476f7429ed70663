"""A small validator for CiscoIPPhone XML, driven by the limits in CiscoIPPhone.xsd.

It reads the schema with ElementTree. For every element of a document it checks
that the element is declared where it appears and how often each child occurs
(minOccurs and maxOccurs). It also checks text length, enumerations, number ranges,
and that no undeclared attribute or stray text is present. Child order is checked
only when asked, because the phones' parser is not a full XML parser and other
servers put SoftKeyItem after the items.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

XSD = "{http://www.w3.org/2001/XMLSchema}"
UNBOUNDED = 10**9
INTEGER_TYPES = {"short", "unsignedShort", "unsignedByte", "int", "integer"}


@dataclass
class TextRule:
    base: str = "string"
    min_length: int = 0
    max_length: int | None = None
    choices: set[str] | None = None
    minimum: int | None = None
    maximum: int | None = None


@dataclass
class Child:
    name: str
    min_occurs: int
    max_occurs: int
    rule: "ElementRule"


@dataclass
class ElementRule:
    children: list[Child] = field(default_factory=list)
    attributes: set[str] = field(default_factory=set)
    text: TextRule | None = None


class CiscoSchema:
    """Rules for every top-level element of CiscoIPPhone.xsd."""

    def __init__(self, path: Path) -> None:
        tree = ET.parse(path).getroot()
        self._types = {
            node.get("name"): node for node in tree.findall(f"{XSD}complexType")
        }
        self.roots = {
            node.get("name"): self._element_rule(node)
            for node in tree.findall(f"{XSD}element")
        }

    # -- reading the schema ---------------------------------------------------

    def _element_rule(self, node: ET.Element) -> ElementRule:
        type_name = node.get("type")
        if type_name is not None:
            local = type_name.split(":")[-1]
            if local in self._types:
                return self._complex_rule(self._types[local])
            return ElementRule(text=TextRule(base=local))
        simple = node.find(f"{XSD}simpleType")
        if simple is not None:
            return ElementRule(text=_text_rule(simple.find(f"{XSD}restriction")))
        complex_node = node.find(f"{XSD}complexType")
        if complex_node is not None:
            return self._complex_rule(complex_node)
        return ElementRule(text=TextRule())

    def _complex_rule(self, node: ET.Element) -> ElementRule:
        rule = ElementRule()
        content = node.find(f"{XSD}complexContent")
        if content is not None:
            extension = content.find(f"{XSD}extension")
            base = self._complex_rule(self._types[extension.get("base").split(":")[-1]])
            rule.children += base.children
            rule.attributes |= base.attributes
            node = extension
        for attribute in node.findall(f"{XSD}attribute"):
            rule.attributes.add(attribute.get("name"))
        sequence = node.find(f"{XSD}sequence")
        if sequence is not None:
            for child in sequence.findall(f"{XSD}element"):
                maximum = child.get("maxOccurs", "1")
                rule.children.append(
                    Child(
                        name=child.get("name"),
                        min_occurs=int(child.get("minOccurs", "1")),
                        max_occurs=(
                            UNBOUNDED if maximum == "unbounded" else int(maximum)
                        ),
                        rule=self._element_rule(child),
                    )
                )
        return rule

    # -- validating -----------------------------------------------------------

    def validate(self, document: bytes, strict_order: bool = False) -> list[str]:
        """Return every problem found in ``document``; an empty list means valid."""
        try:
            root = ET.fromstring(document)
        except ET.ParseError as error:
            return [f"not well-formed XML: {error}"]
        rule = self.roots.get(root.tag)
        if rule is None:
            return [f"root element {root.tag} is not declared in the schema"]
        return _check(root, rule, root.tag, strict_order)


def _text_rule(restriction: ET.Element | None) -> TextRule:
    rule = TextRule()
    if restriction is None:
        return rule
    rule.base = restriction.get("base", "xsd:string").split(":")[-1]
    for facet in restriction:
        name, value = facet.tag.replace(XSD, ""), facet.get("value")
        if name == "maxLength":
            rule.max_length = int(value)
        elif name == "minLength":
            rule.min_length = int(value)
        elif name == "enumeration":
            rule.choices = (rule.choices or set()) | {value}
        elif name == "minInclusive":
            rule.minimum = int(value)
        elif name == "maxInclusive":
            rule.maximum = int(value)
    return rule


def _check(
    element: ET.Element, rule: ElementRule, path: str, strict_order: bool
) -> list[str]:
    problems = [
        f"{path}: attribute {name} is not declared"
        for name in element.attrib
        if name not in rule.attributes
    ]
    if rule.text is not None:
        if len(element):
            problems.append(f"{path}: a text element has child elements")
        return problems + _check_text(element.text or "", rule.text, path)
    if (element.text or "").strip():
        problems.append(f"{path}: stray text {element.text.strip()[:20]!r}")

    declared = {child.name: index for index, child in enumerate(rule.children)}
    counts: dict[str, int] = {}
    last_index = -1
    for child in element:
        if child.tag not in declared:
            problems.append(f"{path}: element {child.tag} is not allowed here")
            continue
        counts[child.tag] = counts.get(child.tag, 0) + 1
        index = declared[child.tag]
        if strict_order and index < last_index:
            problems.append(
                f"{path}: {child.tag} comes after "
                f"{rule.children[last_index].name}, against the schema order"
            )
        last_index = max(last_index, index)
        child_rule = rule.children[index].rule
        problems += _check(
            child, child_rule, f"{path}/{child.tag}[{counts[child.tag]}]", strict_order
        )
    for child in rule.children:
        count = counts.get(child.name, 0)
        if count < child.min_occurs:
            problems.append(
                f"{path}: {child.name} occurs {count} times, "
                f"at least {child.min_occurs} required"
            )
        if count > child.max_occurs:
            problems.append(
                f"{path}: {child.name} occurs {count} times, "
                f"at most {child.max_occurs} allowed"
            )
    return problems


def _check_text(text: str, rule: TextRule, path: str) -> list[str]:
    problems = []
    if rule.max_length is not None and len(text) > rule.max_length:
        problems.append(
            f"{path}: {len(text)} characters, at most {rule.max_length} allowed"
        )
    if len(text) < rule.min_length:
        problems.append(
            f"{path}: {len(text)} characters, at least {rule.min_length} required"
        )
    if rule.choices is not None and text not in rule.choices:
        problems.append(f"{path}: {text!r} is not one of {sorted(rule.choices)}")
    if rule.base in INTEGER_TYPES:
        try:
            number = int(text)
        except ValueError:
            return problems + [f"{path}: {text!r} is not a whole number"]
        if rule.minimum is not None and number < rule.minimum:
            problems.append(f"{path}: {number} is below {rule.minimum}")
        if rule.maximum is not None and number > rule.maximum:
            problems.append(f"{path}: {number} is above {rule.maximum}")
    return problems
