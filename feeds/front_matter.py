"""YAML front matter to plain values, as PyYAML's safe loader reads it (dates left as text).

A first build reads every article's front matter once, and PyYAML spent longer building its
values than parsing them. Front matter is nearly always the same few shapes: keys with one-line
text, one-line lists of text, and lists of small mappings (the photos). `load` reads those shapes
itself and hands every other document, untouched, to PyYAML (libyaml). It reads a document
itself only when it can tell that PyYAML would give the very same values: a test holds the two to
that over every shape here and many that are not.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from typing import Any

import yaml

_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"

YAMLError = yaml.YAMLError


class _Loader(yaml.CSafeLoader):
    """Safe YAML that leaves dates as text, so that one parser reads every date form."""

    def construct_document(self, node: yaml.Node) -> Any:
        """What PyYAML's safe constructor makes of `node`, made directly for text, lists and
        mappings: its general way (generators, kept state, for structures that contain themselves)
        took longer than parsing. Anything else (numbers, booleans, merge keys) goes its way."""
        return self._plain(node, set(), {})

    def _plain(self, node: yaml.Node, open_nodes: set[int], built: dict[int, Any]) -> Any:
        tag = node.tag
        if tag == _STR and isinstance(node, yaml.ScalarNode):
            return node.value
        # A node named by several aliases is one object, as PyYAML makes it: made again for each,
        # nine aliases of nine aliases … of a list ("a billion laughs") would be a billion lists.
        if id(node) in built:
            return built[id(node)]
        if tag == _SEQ and isinstance(node, yaml.SequenceNode):
            with _building(node, open_nodes):
                items = built[id(node)] = [self._plain(item, open_nodes, built) for item in node.value]
                return items
        if tag == _MAP and isinstance(node, yaml.MappingNode) and all(key.tag != _MERGE for key, _ in node.value):
            mapping: dict[Any, Any] = {}
            with _building(node, open_nodes):
                for key_node, value_node in node.value:
                    key = self._plain(key_node, open_nodes, built)
                    try:
                        hash(key)
                    except TypeError:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
                        ) from None
                    mapping[key] = self._plain(value_node, open_nodes, built)
            built[id(node)] = mapping
            return mapping
        return super().construct_document(node)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@contextlib.contextmanager
def _building(node: yaml.Node, open_nodes: set[int]) -> Iterator[None]:
    """Refuses a list or mapping that contains itself (through an alias), which no field can use."""
    if id(node) in open_nodes:
        problem = "found a list or mapping that contains itself"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    open_nodes.add(id(node))
    try:
        yield
    finally:
        open_nodes.discard(id(node))


def load(text: str) -> Any:
    """The values of a YAML document, as `yaml.load` with the safe loader gives them, dates as text.

    Raises YAMLError for a document that is not YAML.
    """
    values = _read_plain_shapes(text)
    if values is None:
        _refuse_deep(text)
        values = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    return values


#: How deep lists and mappings may nest. libyaml builds nested ones by recursion in C, and a few
#: ten thousand levels ("title: [[[[…") ran out of stack: the process died, with no error to catch.
MAX_DEPTH = 64


def _refuse_deep(text: str) -> None:
    """Raises YAMLError for a document whose lists and mappings nest deeper than MAX_DEPTH.

    Front matter never comes near it, so the events are counted only when a bound taken from the
    text allows that depth: each level opens a flow collection with "[" or "{", or is indented
    further, or is opened by an indicator ("-", "?") that may also hold a mapping on its line.
    """
    indent = max((len(spaces) for spaces in _INDENTS.findall(text)), default=0)
    bound = text.count("[") + text.count("{") + 2 * (text.count("-") + text.count("?")) + indent + 1
    if bound <= MAX_DEPTH:
        return
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):  # the events come without recursion
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.YAMLError(f"lists and mappings nest more than {MAX_DEPTH} deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


_INDENTS = re.compile(r"^[ \t]+", re.MULTILINE)


# What `_read_plain_shapes` reads; a document with anything else goes to PyYAML.
# Only these characters: no tabs, no carriage returns, none of YAML's other line breaks
# (U+0085, U+2028, U+2029), no byte order mark and nothing libyaml refuses.
_PLAIN_TEXT = re.compile("[\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*")
_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
# Quoted text on one line: double quotes with no escapes, or single quotes with '' for one.
_QUOTED = r'"[^"\\]*"|\'(?:[^\']|\'\')*\''
# Unquoted text on one line that YAML can read only as one scalar: it starts with a letter, a
# digit, "~", "+", "." or a "-" that is not an item's dash, has no "#" (a comment) and no ":"
# before a space or at its end (a key). Inside a flow list, no indicator at all. Whether it is
# text, a number, a boolean or null is left to PyYAML's own resolver.
_START = r"(?:[^\W_]|[~+.]|-(?=[^\s,\]]))"
_PLAIN = rf"{_START}(?:(?:[^#:\n]|:(?=\S))*[^\s#:])?"
_PLAIN_IN_FLOW = rf"{_START}(?:[^:#,\[\]{{}}\"'&*!|>%@`\n]*[^\s:#,\[\]{{}}\"'&*!|>%@`])?"
_SCALAR = re.compile(rf"(?:({_QUOTED})|({_PLAIN})) *")
_ENTRY = re.compile(rf"(?P<key>{_KEY}):(?: +(?P<value>.*))?")
_ITEM = re.compile(r"(?P<indent> *)- +(?P<rest>.*)")
_FLOW_ITEM = re.compile(rf" *(?:({_QUOTED})|({_PLAIN_IN_FLOW})) *(,|\]) *")


class _NotPlain(Exception):
    """The document has something `_read_plain_shapes` does not read."""


def _read_plain_shapes(text: str) -> dict[str, Any] | None:
    """The values of a document made only of the plain shapes, or None if it has anything else."""
    if not _PLAIN_TEXT.fullmatch(text):
        return None
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return None
    values: dict[str, Any] = {}
    at = 0
    try:
        while at < len(lines):
            if lines[at] == "":  # an empty line between two keys
                at += 1
                continue
            key, value = _entry(lines[at])
            at += 1
            if value is None:
                values[key], at = _block_list(lines, at)
            else:
                values[key] = _value(value)
    except _NotPlain:
        return None
    return values


def _entry(line: str) -> tuple[str, str | None]:
    """A "key: value" line's key and value (None when the value is on the lines below)."""
    entry = _ENTRY.fullmatch(line)
    if entry is None or _scalar_tag(entry["key"]) != _STR:
        raise _NotPlain
    value: str | None = entry["value"]
    return entry["key"], value if value and value.strip() else None


def _block_list(lines: list[str], at: int) -> tuple[list[Any], int]:
    """The list whose items ("- …") start at line `at`, each the same indent, and the line after it."""
    items: list[Any] = []
    indent: str | None = None
    while at < len(lines):
        item = _ITEM.fullmatch(lines[at])
        if item is None:
            break
        if indent is None:
            indent = item["indent"]
        elif item["indent"] != indent:
            raise _NotPlain
        rest = item["rest"]
        column = len(lines[at]) - len(rest)
        at += 1
        if _ENTRY.fullmatch(rest) is None:
            items.append(_value(rest))
            continue
        # A mapping: its first key on the dash's line, the others below at the same column.
        mapping: dict[str, Any] = {}
        line = rest
        while True:
            key, value = _entry(line)
            if value is None:
                raise _NotPlain
            mapping[key] = _value(value)
            following = lines[at] if at < len(lines) else ""
            if following[:column] != " " * column or following[column : column + 1] in ("", " "):
                break
            line = following[column:]
            at += 1
        items.append(mapping)
    # The list ends where the next key starts, at the start of its line.
    if not items or (at < len(lines) and lines[at].startswith(" ")):
        raise _NotPlain
    return items, at


def _value(text: str) -> Any:
    """A value written on one line: a flow list or a scalar."""
    return _flow_list(text) if text.startswith("[") else _scalar(text)


def _flow_list(text: str) -> list[Any]:
    """`[item, …]` on one line, each item a scalar."""
    if text.rstrip(" ") == "[]":
        return []
    items: list[Any] = []
    at = 1
    while True:
        item = _FLOW_ITEM.match(text, at)
        if item is None:
            raise _NotPlain
        items.append(_scalar_of(item[1], item[2]))
        at = item.end()
        if item[3] == "]":
            if at != len(text):
                raise _NotPlain
            return items


def _scalar(text: str) -> Any:
    """A one-line quoted or plain scalar, with nothing after it."""
    read = _SCALAR.fullmatch(text)
    if read is None:
        raise _NotPlain
    return _scalar_of(read[1], read[2])


def _scalar_of(quoted: str | None, plain: str | None) -> Any:
    """The value of a scalar the patterns matched: exactly one of the two groups took part."""
    if quoted is not None:
        return quoted[1:-1] if quoted[0] == '"' else quoted[1:-1].replace("''", "'")
    if plain is None:  # neither took part: not for this reader, PyYAML decides
        raise _NotPlain
    return _plain_value(plain)


_RESOLVER = yaml.resolver.Resolver()
_RESOLVER.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


@functools.lru_cache(maxsize=4096)  # the same keys, over and over
def _scalar_tag(plain: str) -> str:
    """The tag PyYAML gives plain (unquoted) text: str, int, float, bool or null."""
    return str(_RESOLVER.resolve(yaml.ScalarNode, plain, (True, False)))  # type: ignore[no-untyped-call]


@functools.lru_cache(maxsize=4096)  # true, false, the same few numbers
def _plain_value(plain: str) -> Any:
    """What PyYAML's safe constructor makes of plain text: text, or a number, boolean or null.
    Only immutable values, so that they may be handed out again."""
    tag = _scalar_tag(plain)
    if tag == _STR:
        return plain
    return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, yaml.ScalarNode(tag, plain))
