"""Front matter reads exactly as PyYAML's safe loader reads it, whichever way it is read."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
import yaml

from feeds import front_matter
from feeds.content import _FRONT_MATTER

KEYS = ["title", "date", "id", "_x", "a1", "Title", "k"]
ODD_KEYS = ["yes", "on", "null", "True", "12", "key-dash", "ð"]
SCALARS = [
    '"Þórður Einarsdóttir"', '"Eldgos: hraun rennur"', '"a  b  "', '""', "'it''s'", "'a\\b'", "''",
    '"a\\"b"', '"a\\nb"', '"open', "'open", "plain text", "Ljósmynd/Jón Pétursson", "AFP/KCNA", "a   b",
    "2023-09-17", "2023-09-17T10:00:00Z", "17. september 2023", "bench-000006", "2025-0214-etna",
    "12", "012", "0x1F", "0o17", "0b101", "1_000", "190:20:30", "1.5", "1.5e3", "1e3", "+1", "-1", ".5",
    ".inf", "-.inf", "true", "False", "TRUE", "yes", "No", "on", "OFF", "y", "~", "null", "Null",
    "a:b", "[a, b]", "[]", "-a", "+", ".", "~x", "-", "[-1, +2, .5, ~]", "['a', \"b\", c]", "[a, [b]]",
    "[1, true, ~]", "á ", "https://a.is/x.jpg",
    "a - b", '"a" ', "x\\y", "ð þ æ ö", "Á", "1", "[ Jón ,'Ó''B' ]",
]  # fmt: skip
ODD_SCALARS = [
    '"a\\"b"', '"a\\nb"', '"open', "'open", "- a", "-- a", "[- a]", "[-]", "a: b", "a:", "a #c", "a#b", "#c",
    "&a x", "*a",
    "!!str 5", "!!int 5", "[ ]", "[a,]", "[a, b", "[a: b]", "[a]x", "{a: b}", "|", ">", "%x", "@x", "`x",
    "?x", "? x", ":x", '"a" trailing', "'a' #c", "ÿ:", "[a, b] # c", "",
]  # fmt: skip
NOISE = ["", "# comment", "  extra", "\tx: 1", "...", "---", "- x", "x : 1", "key:value", "? k", "<<: {a: 1}"]
ODD_CHARACTERS = ["\r", "\t", "\x85", "\u2028", "\ufeff", "\x7f", "\x01", "\ud7ff", "\U0001f600", "\xa0"]


def outcome(load: Any, text: str) -> tuple[str, Any]:
    try:
        return "read", load(text)
    except yaml.YAMLError:
        return "refused", None


def pyyaml(text: str) -> Any:
    return yaml.load(text, Loader=front_matter._Loader)  # noqa: S506 - a SafeLoader


def key(chance: random.Random) -> str:
    return chance.choice(ODD_KEYS if chance.random() < 0.03 else KEYS)


def scalar(chance: random.Random) -> str:
    return chance.choice(ODD_SCALARS if chance.random() < 0.03 else SCALARS)


def block_list(chance: random.Random) -> list[str]:
    indent = " " * chance.choice([0, 2, 2, 4])
    lines = []
    for _ in range(chance.randint(0 if chance.random() < 0.05 else 1, 3)):
        if chance.random() < 0.5:
            lines.append(f"{indent}- {scalar(chance)}")
            continue
        gap = " " * chance.choice([1, 1, 1, 2])
        lines.append(f"{indent}-{gap}{key(chance)}: {scalar(chance)}")
        column = len(indent) + 1 + len(gap)
        for _ in range(chance.randint(0, 3)):
            shift = 0 if chance.random() < 0.95 else chance.choice([1, -1, 2])
            lines.append(" " * max(0, column + shift) + f"{key(chance)}: {scalar(chance)}")
    return lines


def document(chance: random.Random) -> str:
    lines = []
    for _ in range(chance.randint(0, 6)):
        roll = chance.random()
        if roll < 0.6:
            lines.append(f"{key(chance)}: {scalar(chance)}")
        elif roll < 0.98:
            lines.append(f"{key(chance)}:{chance.choice(['', ' ', '  '])}")
            lines.extend(block_list(chance))
        else:
            lines.append(chance.choice(NOISE))
    text = "\n".join(lines) + chance.choice(["\n", "", "\n\n"])
    if chance.random() < 0.02:
        at = chance.randrange(len(text) + 1)
        text = text[:at] + chance.choice(ODD_CHARACTERS) + text[at:]
    return text


def test_every_document_reads_as_pyyaml_reads_it() -> None:
    chance = random.Random(20261206)
    read_directly = 0
    kinds: set[type] = set()
    for _ in range(20_000):
        text = document(chance)
        expected = outcome(pyyaml, text)
        assert outcome(front_matter.load, text) == expected, text
        direct = front_matter._read_plain_shapes(text)
        if direct is not None:
            read_directly += 1
            assert ("read", direct) == expected, text
            kinds.update(type(value) for value in direct.values())
            kinds.update(type(item) for value in direct.values() if isinstance(value, list) for item in value)
    # The shortcut is taken often, and for every kind of value, so the comparison means something.
    assert read_directly > 5000
    assert {str, list, dict, bool, int, float, type(None)} <= kinds


@pytest.mark.parametrize(
    "text",
    [
        'title: "Etna gýs enn"\ndate: "2025-02-14T11:40:00+00:00"\nauthors: [Páll Ólafsson]\n'
        'topics: [Eldgos, Ferðaþjónusta]\nimages:\n  - file: etna.jpg\n    caption: "Öskumökkur."\n'
        '    credit: "Reuters"\ndraft: false\nid: 2025-0214-etna\n',
        "images:\n- file: a.jpg\n  credit: AFP/KCNA\nid: x\n",
        "authors:\n  - Jón\n  - 'Ó''Brien'\n",
        "updated: 2023-09-17T10:00:00Z\nwidth: 1_200\nheight: 0x20\n",
    ],
)
def test_the_usual_shapes_are_read_directly_and_alike(text: str) -> None:
    direct = front_matter._read_plain_shapes(text)
    assert direct is not None
    assert direct == pyyaml(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1]\nb: *x\n",  # anchors and aliases
        "base: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n",  # merge keys
        "a: |\n  two\n  lines\n",  # block scalars
        "title: two\n  lines\n",  # a plain scalar over two lines
        'a: "escaped\\u00e9"\n',
        "a: 1 # comment\n",
        "? [a]\n: 1\n",  # an unhashable key: refused by both
        "x: !!binary aGVsbG8=\n",
    ],
)
def test_other_shapes_go_to_pyyaml(text: str) -> None:
    assert front_matter._read_plain_shapes(text) is None
    assert outcome(front_matter.load, text) == outcome(pyyaml, text)


def test_a_list_that_contains_itself_is_refused_with_a_reason() -> None:
    with pytest.raises(yaml.YAMLError, match="contains itself"):
        front_matter.load("a: &x [*x]\n")


#: How the front matter block was found before it was tried line by line: the meaning to keep.
BLOCK_BY_CHARACTERS = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
LINES = ["---", "--- ", "---\t", "----", " ---", "---x", "--", "", "title: Þing", "a: b\r", "---\r", "- x", "\t"]


def test_the_front_matter_block_is_found_where_it_always_was() -> None:
    """The article file's first `---` line up to the next: the same span as the pattern tried at
    every character, over generated files of every kind of line and line ending."""
    generator = random.Random(5005)
    texts = ["---\n---\n", "---\n---", "---\r\n---\r\n", "---\na: b\n", "a\n---\n---\n", "---\n\n---\nx"]
    for _ in range(20_000):
        lines = generator.choices(LINES, k=generator.randint(0, 8))
        ending = generator.choice(["\n", "\r\n"])
        texts.append(ending.join(lines) + generator.choice(["", ending]))
    for text in texts:
        before, now = BLOCK_BY_CHARACTERS.match(text), _FRONT_MATTER.match(text)
        assert (before and (before[1], before.end())) == (now and (now[1], now.end())), repr(text)
    assert sum(BLOCK_BY_CHARACTERS.match(text) is not None for text in texts) > 2_000


@pytest.mark.parametrize(
    "text",
    [
        "title: " + "[" * 50_000 + "]" * 50_000,  # crashed the process: libyaml recursed out of stack
        "title: " + "{a: " * 50_000 + "b" + "}" * 50_000,
        "- " * 100_000 + "x",
        "".join("  " * level + "- \n" for level in range(1_500)),
        "".join(" " * level + f"k{level}:\n" for level in range(1_500)),
    ],
)
def test_lists_and_mappings_nested_deeper_than_any_front_matter_are_refused(text: str) -> None:
    with pytest.raises(front_matter.YAMLError, match=f"nest more than {front_matter.MAX_DEPTH} deep"):
        front_matter.load(text)


def test_nesting_front_matter_may_have_is_read_as_pyyaml_reads_it() -> None:
    text = "title: Þing\nimages:\n  - " + "[" * 60 + "mynd" + "]" * 60 + "\n  - {a: [b, {c: d}]}\n"
    assert front_matter.load(text) == yaml.load(text, Loader=yaml.CSafeLoader)


def test_a_list_named_by_many_aliases_is_made_once() -> None:
    """Nine aliases of nine aliases of … a list (a "billion laughs"): one object for each node, as
    PyYAML makes them, instead of 9⁹ lists (seven levels took five seconds, nine would take hours)."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    values = front_matter.load("\n".join(levels))
    assert values["a9"][0] is values["a9"][8] is values["a8"]
    assert values["a1"] == [["x"] * 9] * 9
