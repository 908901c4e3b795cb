"""The QRS filter language (`?filter=`), compiled once into a Python predicate over JSON objects.

Grammar (keywords and operators case-insensitive, `and` binds tighter than `or`)::

    expr       := conj ("or" conj)*
    conj       := primary ("and" primary)*
    primary    := "(" expr ")" | comparison
    comparison := path op value          op: eq ne gt ge lt le sw ew so (so = substring of, i.e. contains)
    value      := 'quoted string' (\\' escapes a quote) | GUID | number | true | false | null

A path through a collection (`tags.name`) matches when ANY element matches. Strings compare case-insensitively;
quoted datetimes compare as datetimes against date properties. Errors raise FilterError (a 400 for the caller).
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import clock
from .paths import PathError, PropertyPath, resolve

Predicate = Callable[[dict[str, Any]], bool]
Test = Callable[[Any], bool]

_ORDER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_TEXT_OPS: dict[str, Callable[[str, str], bool]] = {
    "sw": str.startswith,
    "ew": str.endswith,
    "so": lambda value, part: part in value,
}
_OPS = set(_ORDER_OPS) | set(_TEXT_OPS)
_KEYWORDS = {"and", "or"}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_WORD_END = re.compile(r"[\s()']")


class FilterError(ValueError):
    """A malformed filter; the message is the plain-text 400 body."""


@dataclass(frozen=True)
class Token:
    kind: str  # "(", ")", "str" (quoted) or "word"
    text: str
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # "str", "guid", "number", "bool", "null"
    value: Any


def compile_filter(entity: str, text: str | None) -> Predicate | None:
    """Compile `text` for objects of schema `entity`; None when there is nothing to filter."""
    if text is None or not text.strip():
        return None
    parser = _Parser(entity, tokenize(text))
    predicate = parser.parse_or()
    if parser.peek() is not None:
        token = parser.peek()
        assert token is not None
        raise FilterError(f"Invalid filter: unexpected '{token.text}' at position {token.pos}")
    return predicate


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in "()":
            tokens.append(Token(char, char, pos))
            pos += 1
        elif char == "'":
            value, end = _read_string(text, pos)
            tokens.append(Token("str", value, pos))
            pos = end
        else:
            match = _WORD_END.search(text, pos)
            end = match.start() if match else len(text)
            tokens.append(Token("word", text[pos:end], pos))
            pos = end
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted string starting at `start`; returns (value, index after the closing quote)."""
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            following = text[pos + 1]
            # Only \' and \\ are escapes; any other backslash is kept (e.g. 'DOMAIN\user').
            out.append(following if following in "'\\" else char + following)
            pos += 2
        elif char == "'":
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise FilterError(f"Invalid filter: unterminated string starting at position {start}")


class _Parser:
    def __init__(self, entity: str, tokens: list[Token]) -> None:
        self.entity = entity
        self.tokens = tokens
        self.index = 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise FilterError(f"Invalid filter: expected {what} but the filter ended")
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.lower() == word

    def parse_or(self) -> Predicate:
        terms = [self.parse_and()]
        while self.at_keyword("or"):
            self.index += 1
            terms.append(self.parse_and())
        return _any_of(terms)

    def parse_and(self) -> Predicate:
        terms = [self.parse_primary()]
        while self.at_keyword("and"):
            self.index += 1
            terms.append(self.parse_primary())
        return _all_of(terms)

    def parse_primary(self) -> Predicate:
        token = self.peek()
        if token is not None and token.kind == "(":
            self.index += 1
            inner = self.parse_or()
            closing = self.take("')'")
            if closing.kind != ")":
                raise FilterError(f"Invalid filter: expected ')' at position {closing.pos}, got '{closing.text}'")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        prop = self.take("a property name")
        if prop.kind != "word" or prop.text.lower() in _KEYWORDS:
            raise FilterError(f"Invalid filter: expected a property name at position {prop.pos}, got '{prop.text}'")
        op = self.take("an operator")
        if op.kind != "word" or op.text.lower() not in _OPS:
            raise FilterError(f"Invalid filter: unknown operator '{op.text}' at position {op.pos}")
        value = self.take("a value")
        try:
            path = resolve(self.entity, prop.text)
        except PathError as err:
            raise FilterError(f"Invalid filter: {err}") from None
        return _comparison(path, op.text.lower(), _literal(value))


def _literal(token: Token) -> Literal:
    if token.kind == "str":
        return Literal("str", token.text)
    if token.kind != "word":
        raise FilterError(f"Invalid filter: expected a value at position {token.pos}, got '{token.text}'")
    word = token.text.lower()
    if word == "null":
        return Literal("null", None)
    if word in ("true", "false"):
        return Literal("bool", word == "true")
    if _NUMBER.match(word):
        return Literal("number", float(word) if "." in word else int(word))
    if _is_guid(word):
        return Literal("guid", word)
    raise FilterError(f"Invalid filter: cannot read value '{token.text}' at position {token.pos} (quote strings)")


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


class _Equals:
    """`path eq 'text'` on a single-valued text or GUID property: kept recognisable, so that a long
    `id eq X or id eq Y or ...` chain compiles to one set lookup instead of a chain of comparisons."""

    __slots__ = ("get", "keys", "value")

    def __init__(self, path: PropertyPath, value: str) -> None:
        self.keys = path.keys
        self.get = path.getter()
        self.value = value

    def __call__(self, obj: dict[str, Any]) -> bool:
        found = self.get(obj)
        return found is not None and found.lower() == self.value


def _comparison(path: PropertyPath, op: str, literal: Literal) -> Predicate:
    test = _value_test(path, op, literal)
    if op == "eq" and not path.multi and path.leaf in ("str", "guid") and literal.kind in ("str", "guid"):
        return _Equals(path, str(literal.value).lower())
    get = path.getter()
    if path.multi:
        return lambda obj: any(map(test, get(obj)))
    return lambda obj: test(get(obj))


def _value_test(path: PropertyPath, op: str, literal: Literal) -> Test:
    if literal.kind == "null":
        if op not in ("eq", "ne"):
            raise FilterError(f"Invalid filter: '{op}' cannot compare {path.text} with null")
        return (lambda v: v is None) if op == "eq" else (lambda v: v is not None)
    leaf = path.leaf
    if leaf == "bool":
        return _bool_test(path, op, literal)
    if leaf in ("int", "float"):
        return _number_test(path, op, literal)
    if leaf.startswith("@"):
        raise FilterError(f"Invalid filter: {path.text} is an object; name one of its properties")
    if leaf == "date" and op in _ORDER_OPS:
        return _date_test(path, op, literal)
    if leaf == "guid" and op in _ORDER_OPS and not _is_guid(str(literal.value)):
        raise FilterError(f"Invalid filter: '{literal.value}' is not a valid GUID for {path.text}")
    if literal.kind == "bool":
        raise FilterError(f"Invalid filter: {path.text} is text; compare it with a quoted string")
    return _text_test(op, str(literal.value).lower())


def _text_test(op: str, lit: str) -> Test:
    if op in _TEXT_OPS:
        text_op = _TEXT_OPS[op]
        return lambda v: v is not None and text_op(v.lower(), lit)
    if op == "ne":
        return lambda v: v is None or v.lower() != lit
    order_op = _ORDER_OPS[op]
    return lambda v: v is not None and order_op(v.lower(), lit)


def _date_test(path: PropertyPath, op: str, literal: Literal) -> Test:
    if literal.kind != "str":
        raise FilterError(f"Invalid filter: {path.text} is a date; compare it with a quoted ISO datetime")
    try:
        lit = clock.normalize(literal.value)
    except ValueError:
        raise FilterError(f"Invalid filter: '{literal.value}' is not a valid datetime for {path.text}") from None
    # Dates are stored in one fixed format, so string order is time order.
    return _ordered(op, lit)


def _bool_test(path: PropertyPath, op: str, literal: Literal) -> Test:
    value = literal.value
    if literal.kind == "str" and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    elif literal.kind != "bool":
        raise FilterError(f"Invalid filter: {path.text} is a boolean; compare it with true or false")
    if op not in ("eq", "ne"):
        raise FilterError(f"Invalid filter: '{op}' does not apply to the boolean {path.text}")
    return (lambda v: v is value) if op == "eq" else (lambda v: v is not value)


def _number_test(path: PropertyPath, op: str, literal: Literal) -> Test:
    if literal.kind != "number" or op not in _ORDER_OPS:
        raise FilterError(f"Invalid filter: {path.text} is a number; use eq/ne/gt/ge/lt/le with a number")
    return _ordered(op, literal.value)


def _ordered(op: str, lit: Any) -> Test:
    if op == "ne":
        return lambda v: v is None or v != lit
    order_op = _ORDER_OPS[op]
    return lambda v: v is not None and order_op(v, lit)


def _all_of(terms: list[Predicate]) -> Predicate:
    if len(terms) == 1:
        return terms[0]
    if len(terms) == 2:
        first, second = terms
        return lambda obj: first(obj) and second(obj)
    return lambda obj: all(term(obj) for term in terms)  # flat: a thousand terms must not recurse


def _any_of(terms: list[Predicate]) -> Predicate:
    if len(terms) == 1:
        return terms[0]
    equals = [term for term in terms if isinstance(term, _Equals)]
    if len(equals) == len(terms) and len({term.keys for term in equals}) == 1:
        get, values = equals[0].get, frozenset(term.value for term in equals)
        return lambda obj: (found := get(obj)) is not None and found.lower() in values
    if len(terms) == 2:
        first, second = terms
        return lambda obj: first(obj) or second(obj)
    return lambda obj: any(term(obj) for term in terms)


def sort_key(value: Any) -> tuple[int, Any]:
    """Order nulls first, then values (strings case-insensitively); lists by their first element."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.lower())
    if isinstance(value, bool | int | float):
        return (2, value)
    return (3, str(value))


SortKey = Callable[[dict[str, Any]], tuple[int, Any]]


def _sort_by(get: Callable[[dict[str, Any]], Any]) -> SortKey:
    return lambda obj: sort_key(get(obj))


def compile_orderby(entity: str, text: str | None) -> list[tuple[SortKey, bool]]:
    """`orderby=name desc, userId` -> [(key, descending), ...]; apply as stable sorts from last to first."""
    if text is None or not text.strip():
        return []
    keys: list[tuple[SortKey, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise FilterError(f"Invalid orderby: '{part.strip()}'")
        try:
            get = resolve(entity, words[0]).getter()
        except PathError as err:
            raise FilterError(f"Invalid orderby: {err}") from None
        keys.append((_sort_by(get), len(words) == 2 and words[1].lower() == "desc"))
    return keys
