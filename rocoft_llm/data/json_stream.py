"""Reading a JSON array or JSON-lines data file one record at a time, so that memory holds one
record (and a read buffer), never the whole file: a 200 MB file parsed whole held the bytes, the
decoded text, its lines and every record at once.

JSON lines are read line by line. A JSON array is read by :meth:`json.JSONDecoder.raw_decode`
(the standard library's C scanner) over a sliding buffer: each element is decoded where it starts,
and the buffer grows only while an element is cut by its end. An incremental parser such as ijson
would also stream, but it reports neither the line and column of a syntax error nor a key an
object repeats (it keeps the last value), and the messages below need both.

Errors are those of whole-file reading (:func:`~rocoft_llm.io_utils.read_json`): a syntax error
names the line and column, non-UTF-8 bytes name their line, a record nested too deeply names
itself. A file that is not a JSON array at all is read whole, for the same messages as before.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError
from ..io_utils import read_json, utf8_error

#: bytes read at a time
CHUNK = 1 << 20
#: an error this close to the end of the buffer may be an element the buffer cut: read on and retry
_CUT_MARGIN = 64
_WHITESPACE = " \t\r\n"


def _decode_line(raw: bytes, n: int, path: Path, what: str, fix: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise utf8_error(path, what, fix, raw, e, n) from None


def iter_json_lines(path: Path, what: str, fix: str, object_pairs_hook=None) -> Iterator[object]:
    """The value on every non-blank line of a JSON-lines file, in order."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            line = _decode_line(raw, n, path, what, fix)
            if not line.strip():
                continue
            try:
                yield json.loads(line, object_pairs_hook=object_pairs_hook)
            except RecursionError:
                raise InputError(path, "a record nested too deeply to read", fix, f"line {n}") from None
            except json.JSONDecodeError as e:
                raise InputError(
                    path,
                    f"not valid JSON lines ({e.msg} at column {e.colno})",
                    f"one record per line; {fix}",
                    f"line {n}",
                ) from None


class _ArrayReader:
    """The elements of a JSON array file, decoded one at a time from a buffer of text that holds
    the unread part of the file up to where reading stopped (see the module docstring)."""

    def __init__(self, f, path: Path, what: str, fix: str, object_pairs_hook):
        self.f, self.path, self.what, self.fix = f, path, what, fix
        self.decoder = json.JSONDecoder(object_pairs_hook=object_pairs_hook)
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.eof = "", 0, False
        self.line, self.column = 1, 1  # of buf[0]: for messages
        self.read_size, self.started = CHUNK, False

    def more(self) -> bool:
        """Append the next chunk (twice as large each time an element outgrows the buffer); False at
        the end of the file."""
        if self.eof:
            return False
        self._compact()
        data = self.f.read(self.read_size)
        if not self.started and data.startswith(codecs.BOM_UTF8):
            data = data[3:]
        self.started = True
        self.eof = not data
        pending = self.utf8.getstate()[0]
        try:
            self.buf += self.utf8.decode(data, final=self.eof)
        except UnicodeDecodeError as e:
            line = self.line + self.buf.count("\n")
            raise utf8_error(self.path, self.what, self.fix, pending + data, e, line) from None
        return not self.eof

    def _compact(self) -> None:
        """Drop the consumed text, keeping the line and column of what stays."""
        if self.pos < CHUNK:
            return
        dropped = self.buf[: self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self.line += newlines
            self.column = self.pos - dropped.rfind("\n")
        else:
            self.column += self.pos
        self.buf, self.pos = self.buf[self.pos :], 0

    def peek(self) -> str:
        """The next non-blank character ("" at the end of the file), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos : self.pos + 1]

    def value(self, index: int):
        """Decode the element that starts at the next non-blank character."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise InputError(
                    self.path, f"{self.what} is nested too deeply to read", self.fix, f"record {index}"
                ) from None
            except json.JSONDecodeError as e:
                cut = e.pos >= len(self.buf) - _CUT_MARGIN or e.msg.startswith("Unterminated string")
                if cut and self.grow():
                    continue
                raise self.syntax_error(e.msg, e.pos) from None
            if end < len(self.buf) or not self.grow():  # a number the buffer ends in may go on
                self.pos, self.read_size = end, CHUNK
                return value

    def grow(self) -> bool:
        self.read_size = min(self.read_size * 2, 1 << 30)
        return self.more()

    def syntax_error(self, msg: str, at: int) -> InputError:
        start = self.buf.rfind("\n", 0, at) + 1
        end = self.buf.find("\n", at)
        end = len(self.buf) if end < 0 else end
        line = self.line + self.buf.count("\n", 0, at)
        column = at - start + 1 + (self.column - 1 if start == 0 else 0)
        near = self.buf[max(start, at - 19) : min(end, at + 21)]
        return InputError(
            self.path,
            f"{self.what} is not valid JSON ({msg} at column {column}, near {near!r})",
            self.fix,
            f"line {line}",
        )

    def expect(self, chars: str, index: int) -> str:
        found = self.peek()
        if not found or found not in chars:
            wanted = " or ".join(repr(c) for c in chars)
            raise self.syntax_error(f"Expecting {wanted} after record {index}", self.pos)
        self.pos += 1
        return found


def iter_json_array(path: Path, what: str, fix: str, object_pairs_hook=None) -> Iterator[object]:
    """The elements of the JSON array in ``path``, in order. A file whose first character is not
    ``[`` (an object, an empty file, invalid JSON) is read whole by :func:`read_json`: its error is
    raised, or its value is raised as :class:`NotAnArray` for the caller to name."""
    with open(path, "rb") as f:
        reader = _ArrayReader(f, path, what, fix, object_pairs_hook)
        if reader.peek() != "[":
            raise NotAnArray(read_json(path, what, fix, object_pairs_hook=object_pairs_hook))
        reader.pos += 1
        if reader.peek() == "]":
            reader.pos += 1
        else:
            index = 0
            while True:
                yield reader.value(index)
                if reader.expect(",]", index) == "]":
                    break
                index += 1
        if reader.peek():
            raise reader.syntax_error("Extra data", reader.pos)


class NotAnArray(Exception):
    """The file holds valid JSON that is not an array: ``value`` is what it holds."""

    def __init__(self, value):
        super().__init__(type(value).__name__)
        self.value = value
