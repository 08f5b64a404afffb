"""ClickHouse type names, as the Native format writes them in a column's header, parsed into a tree.

Only what framing needs is kept: a type's family name, its type arguments (with element names for
named Tuple and Nested elements and for the typed paths of JSON) and its literal arguments as text
(numbers, quoted strings, ``key=value`` parameters, ``SKIP`` clauses, an aggregate function).
Anything that does not follow the grammar is refused: a name the parser cannot read must never be
walked by guesswork.
"""

from __future__ import annotations

from dataclasses import dataclass

from embedded.errors import NOT_IMPLEMENTED, ClickHouseError

# Families whose arguments are all literals (or, for QBit, a type then a literal).
_LITERAL_ARGUMENTS = {
    "FixedString", "Decimal", "Decimal32", "Decimal64", "Decimal128", "Decimal256", "DateTime", "DateTime32",
    "DateTime64", "Time64", "Enum8", "Enum16", "Enum", "Dynamic",
}  # fmt: skip
# Families whose type arguments may be named (``Tuple(a UInt8)``, ``Nested(a UInt8)``, ``JSON(a.b UInt32)``).
_NAMED_ARGUMENTS = {"Tuple", "Nested", "JSON"}
_IDENTIFIER = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_PATH = _IDENTIFIER | frozenset(".")
_UNESCAPE = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "a": "\a", "v": "\v"}


class TypeNotFramable(ClickHouseError):
    """A column the embedded ClickHouse cannot write at the client's protocol revision."""

    def __init__(self, message: str, advice: str | None = None):
        super().__init__(int(NOT_IMPLEMENTED), NOT_IMPLEMENTED.name, message)
        self.advice = advice  # what the client can do instead, when there is something better to say


@dataclass(frozen=True)
class DataType:
    name: str
    args: tuple[DataType, ...] = ()  # type arguments, in order
    names: tuple[str, ...] = ()  # the element name of each type argument ('' when unnamed)
    params: tuple[str, ...] = ()  # literal arguments, as written

    def __str__(self) -> str:
        return self.name


def parse_type(text: str) -> DataType:
    parser = _Parser(text)
    node = parser.type()
    if parser.pos != len(text):
        raise TypeNotFramable(f"cannot read the type name {text!r}")
    return node


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def fail(self) -> TypeNotFramable:
        return TypeNotFramable(f"cannot read the type name {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def spaces(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def identifier(self, chars: frozenset = _IDENTIFIER) -> str:
        start = self.pos
        while self.peek() and self.peek() in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def type(self) -> DataType:
        name = self.identifier()
        if not name or name[0].isdigit():
            raise self.fail()
        if self.peek() != "(":
            return DataType(name)
        self.pos += 1
        self.spaces()
        args: list[DataType] = []
        names: list[str] = []
        params: list[str] = []
        if self.peek() == ")":  # Tuple()
            self.pos += 1
            return DataType(name)
        while True:
            self.spaces()
            if name in _LITERAL_ARGUMENTS or (name == "QBit" and args):
                params.append(self.literal())
            elif name.endswith("AggregateFunction") and not params:
                params.extend(self.function(allow_version=name == "AggregateFunction"))
            elif name == "JSON" and self._json_parameter():
                params.append(self.literal())
            else:
                element = self.element_name() if name in _NAMED_ARGUMENTS else ""
                names.append(element)
                args.append(self.type())
            self.spaces()
            char = self.peek()
            self.pos += 1
            if char == ")":
                break
            if char != ",":
                raise self.fail()
        return DataType(name, tuple(args), tuple(names) if any(names) else (), tuple(params))

    def _json_parameter(self) -> bool:
        """At ``max_dynamic_paths=N``, ``SKIP path`` or ``SKIP REGEXP '...'`` in a JSON type."""
        rest = self.text[self.pos :]
        if rest.startswith("SKIP "):
            return True
        word_end = self.pos
        while word_end < len(self.text) and self.text[word_end] in _IDENTIFIER:
            word_end += 1
        return self.text[word_end : word_end + 1] == "="

    def element_name(self) -> str:
        """``name `` before a named element's type, unescaped; '' (nothing consumed) if unnamed."""
        start = self.pos
        name = self.quoted("`") if self.peek() == "`" else self.identifier(_PATH)
        if name and self.peek() == " ":
            self.pos += 1
            return name
        self.pos = start
        return ""

    def quoted(self, quote: str) -> str:
        self.pos += 1
        out = []
        while True:
            char = self.peek()
            if not char:
                raise self.fail()
            self.pos += 1
            if char == quote:
                return "".join(out)
            if char == "\\":
                escaped = self.peek()
                self.pos += 1
                out.append(_UNESCAPE.get(escaped, escaped))
            else:
                out.append(char)

    def literal(self) -> str:
        """Text up to the comma or parenthesis ending an argument, quotes and nesting respected."""
        start = self.pos
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in "'`\"":
                self.quoted(char)
                continue
            if char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    break
                depth -= 1
            elif char == "," and depth == 0:
                break
            self.pos += 1
        if self.pos == start:
            raise self.fail()
        return self.text[start : self.pos].strip()

    def function(self, allow_version: bool) -> list[str]:
        """An aggregate function argument: [version,] name and its parameters (text, '' when none)."""
        version = ""
        if allow_version and self.peek().isdigit():
            version = self.literal()
            self.spaces()
            if self.peek() != ",":
                raise self.fail()
            self.pos += 1
            self.spaces()
        function = self.identifier()
        if not function:
            raise self.fail()
        parameters = ""
        if self.peek() == "(":
            start = self.pos
            self.literal_group()
            parameters = self.text[start + 1 : self.pos - 1]
        return [version, function, parameters]

    def literal_group(self) -> None:
        """Past a parenthesized group of literals."""
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in "'`\"":
                self.quoted(char)
                continue
            self.pos += 1
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return
        raise self.fail()
