"""AggregateFunction columns in Native: each row is the function's own serialized state, with no length.

Skipping a state means knowing how its function writes it, so only these functions are framed
(with the -If and -Array combinators, which keep their state), as ClickHouse 26.9 writes them:

  * ``count``: the count as a VarUInt;
  * the t-digest quantiles (``quantile(s)TDigest[Weighted]``, ``medianTDigest[Weighted]``): the
    VarUInt number of centroids, then 8 bytes (Float32 mean and count) per centroid;
  * ``min``, ``max``, ``any``, ``anyLast`` and ``argMin``, ``argMax`` (the argument's value, then the
    compared value): a String as an Int32 size (-1 when empty) and that many bytes (the value and
    its terminating zero); any other type as a 0/1 byte and, after a 1, the value as RowBinary.

None of them is versioned, so their states are the same bytes at every revision. Versioned
functions (sumMap, groupBitmap*, uniqMap, windowFunnel, quantileDeterministic...: the state version
the type name carries or the revision picks) and every other function are refused, as are
Nullable arguments (the -Null adapter adds a flag). A LowCardinality argument is its plain type:
aggregate functions are created over the dictionary's type.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from embedded.native_columns import ALIASES, FIXED_SIZES, Codec, Cursor, decimal_size
from embedded.native_types import DataType, TypeNotFramable, parse_type

_INT32 = struct.Struct("<i")
Walk = Callable[[Cursor], None]

_TDIGEST = {
    "quantileTDigest", "quantilesTDigest", "medianTDigest",
    "quantileTDigestWeighted", "quantilesTDigestWeighted", "medianTDigestWeighted",
}  # fmt: skip
_SINGLE_VALUE = {"min", "max", "any", "anyLast"}
_ARG_SINGLE_VALUE = {"argMin", "argMax"}


def _known(function: str) -> bool:
    return function == "count" or function in _TDIGEST or function in _SINGLE_VALUE or function in _ARG_SINGLE_VALUE


def _refuse(node: DataType, why: str) -> TypeNotFramable:
    function = node.params[1]
    return TypeNotFramable(
        why, f"finalize the states in the query (finalizeAggregation, {function}Merge) or read them in another format"
    )


class AggregateFunction(Codec):
    def __init__(self, node: DataType):
        version, function, _parameters = node.params
        if version:
            raise _refuse(node, f"its state version {version} depends on the protocol revision")
        args = list(node.args)
        while not _known(function):  # peel combinators that keep the nested function's state
            if function.endswith("If") and args:
                function, args = function[:-2], args[:-1]
            elif function.endswith("Array") and args and all(arg.name == "Array" for arg in args):
                function, args = function[:-5], [arg.args[0] for arg in args]
            else:
                raise _refuse(node, "the layout of its states is not known to it")
        self.walk = _state_walk(node, function, args)

    def data(self, cur, rows, state):
        walk = self.walk
        for _ in range(rows):
            walk(cur)


def _state_walk(node: DataType, function: str, args: list[DataType]) -> Walk:
    if function == "count":
        return Cursor.varint
    # The functions take LowCardinality arguments as their plain type (only the type name keeps it).
    args = [arg.args[0] if arg.name == "LowCardinality" and arg.args else arg for arg in args]
    if any(arg.name == "Nullable" for arg in args):
        raise _refuse(node, "states over Nullable arguments (with the -Null adapter's flag) are not framed")
    if function in _TDIGEST:
        return _tdigest
    expected = 1 if function in _SINGLE_VALUE else 2
    if len(args) != expected:
        raise _refuse(node, "unexpected arguments")
    walks = [_single_value(node, arg) for arg in args]
    if len(walks) == 1:
        return walks[0]

    def both(cur: Cursor) -> None:
        for walk in walks:
            walk(cur)

    return both


def _tdigest(cur: Cursor) -> None:
    centroids = cur.varint()
    cur.pos += 8 * centroids


def _single_value(node: DataType, arg: DataType) -> Walk:
    if arg.name == "String":
        return _single_string
    value = _row_binary(node, arg)

    def single(cur: Cursor) -> None:
        has = cur.buf[cur.pos]
        cur.pos += 1
        if has:
            value(cur)

    return single


def _single_string(cur: Cursor) -> None:
    size = _INT32.unpack_from(cur.buf, cur.pos)[0]
    cur.pos += 4 + max(size, 0)


def _row_binary(node: DataType, arg: DataType) -> Walk:
    """Past one value of ``arg`` written as RowBinary."""
    name = arg.name
    size = FIXED_SIZES.get(name)
    if name == "FixedString":
        size = int(arg.params[0])
    elif name == "Decimal":
        size = decimal_size(int(arg.params[0]))
    elif name.startswith("Interval"):
        size = 8
    if size is not None and name != "Nothing":
        return _advance(size)
    if name in ALIASES and name != "Geometry":  # the geo types: tuples and arrays of points
        return _row_binary(node, parse_type(ALIASES[name]))
    if name == "String":
        return Cursor.skip_string
    if name == "Nullable" and len(arg.args) == 1:
        inner = _row_binary(node, arg.args[0])

        def nullable(cur: Cursor) -> None:
            is_null = cur.buf[cur.pos]
            cur.pos += 1
            if not is_null:
                inner(cur)

        return nullable
    if name == "LowCardinality" and len(arg.args) == 1:
        return _row_binary(node, arg.args[0])
    if name in ("Tuple", "Array", "Map") and arg.args:
        elements = [_row_binary(node, element) for element in arg.args]
        if name == "Tuple":

            def tuple_(cur: Cursor) -> None:
                for element in elements:
                    element(cur)

            return tuple_

        def repeated(cur: Cursor) -> None:
            for _ in range(cur.varint()):
                for element in elements:
                    element(cur)

        return repeated
    raise _refuse(node, f"values of type {name} in its states are not framed")


def _advance(size: int) -> Walk:
    def advance(cur: Cursor) -> None:
        cur.pos += size

    return advance
