"""GRUB 2 script, split into words and blocks; nothing in it is run.

The lexer knows GRUB's quoting (``'...'`` literal, ``"..."`` with ``\\``
escapes and ``$`` substitution, ``\\`` outside quotes, line continuation,
``#`` comments, ``;`` and newlines between commands) and keeps each word as
parts, so that variables are substituted later, when the menu is read.  The
parser builds a small tree: commands, ``menuentry``/``submenu`` blocks,
``if`` chains (their conditions are dropped: they are never evaluated) and
loops and function definitions (kept only as a note: their bodies are never
read, see :mod:`.grub2`).  Nesting is bounded; a syntax error stops the
file at that point with a note, as GRUB stops running it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Set, Tuple, Union

from .model import MenuError

#: A piece of a word: (text, kind) with kind ``"lit"``, ``"qlit"`` (quoted
#: literal), ``"var"`` (unquoted substitution) or ``"qvar"``.
Part = Tuple[str, str]
Word = Tuple[Part, ...]

#: One lexical item per match; the scan runs in the regex engine.  ``#``
#: inside a word is a character, at its start a comment.
_ITEM = re.compile(r"""
    (?P<plain>[^\s;'"\\$#{}][^\s;'"\\${}]*)
  | (?P<blank>[ \t\r\f\v]+)
  | (?P<end>[\n;])
  | (?P<comment>\#[^\n]*)
  | (?P<single>'[^']*')
  | (?P<double>"(?:[^"\\]|\\.)*")
  | (?P<var>\$(?:\{[^}]+\}|[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?#@*]))
  | (?P<escape>\\.)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
#: Inside double quotes: escapes, substitutions, and the text between them.
_IN_DOUBLE = re.compile(r"""\\([$"\\\n])|\$(\{[^}]+\}|[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[?#@*])"""
                        r"""|([^\\$]+|.)""", re.DOTALL)
_WORD, _SEP, _OPEN, _CLOSE = "word", "sep", "{", "}"
_RESERVED = {"if", "then", "elif", "else", "fi", "for", "while", "until", "do", "done",
             "function", "menuentry", "submenu"}


class GrubSyntaxError(Exception):
    """Where the text stops making sense; the file is read up to there."""


#: (kind, line, word): a word, a command separator, ``{`` or ``}``.
Token = Tuple[str, int, Word]
#: A whole unquoted word and the blanks after it: most of any file.


def literal(word: Word) -> Optional[str]:
    """The text of a word made only of unquoted literal characters, else None."""
    if word and all(kind == "lit" for _, kind in word):
        return "".join(text for text, _ in word)
    return None


class _Lexer:
    def __init__(self, text: str, name: str, max_tokens: int) -> None:
        self.text = text
        self.name = name
        self.max_tokens = max_tokens
        self.line = 1
        self.tokens: List[Token] = []
        self.parts: List[Part] = []

    def end_word(self) -> None:
        if self.parts:
            self.tokens.append((_WORD, self.line, tuple(self.parts)))
            self.parts = []
            if len(self.tokens) > self.max_tokens:
                self.too_many()

    def too_many(self) -> None:
        raise MenuError(f"{self.name}: more words of GRUB script than a menu has")

    def add(self, text: str, kind: str) -> None:
        parts = self.parts
        if kind in ("lit", "qlit") and parts and parts[-1][1] == kind:
            parts[-1] = (parts[-1][0] + text, kind)
        else:
            parts.append((text, kind))

    def double_quoted(self, inner: str) -> None:
        self.add("", "qlit")
        for match in _IN_DOUBLE.finditer(inner):
            escaped, name, chunk = match.groups()
            if escaped is not None:
                if escaped != "\n":
                    self.add(escaped, "qlit")
            elif name is not None:
                self.add(name.strip("{}"), "qvar")
            else:
                self.add(chunk, "qlit")

    def run(self) -> List[Token]:
        text, tokens = self.text, self.tokens
        for match in _ITEM.finditer(text):
            kind, value = match.lastgroup, match.group()
            if kind == "plain":
                if self.parts:
                    self.add(value, "lit")
                else:
                    self.parts.append((value, "lit"))
            elif kind == "blank" or kind == "comment":
                self.end_word()
            elif kind == "end":
                self.end_word()
                tokens.append((_SEP, self.line, ()))
                self.line += value == "\n"
                if len(tokens) > self.max_tokens:
                    self.too_many()
            elif kind == "single":
                self.add(value[1:-1], "qlit")
                self.line += value.count("\n")
            elif kind == "double":
                self.double_quoted(value[1:-1])
                self.line += value.count("\n")
            elif kind == "var":
                self.add(value[1:].strip("{}"), "var")
            elif kind == "escape":
                if value != "\\\n":
                    self.add(value[1], "qlit")
                else:
                    self.line += 1
            elif value in "{}" and not self.parts and self._alone(match.end()):
                tokens.append((_OPEN if value == "{" else _CLOSE, self.line, ()))
                if len(tokens) > self.max_tokens:
                    self.too_many()
            elif value in "'\"":
                which = "single" if value == "'" else "double"
                raise GrubSyntaxError(f"line {self.line}: unterminated {which} quote")
            else:
                self.add(value, "lit")
        self.end_word()
        return tokens

    def _alone(self, end: int) -> bool:
        following = self.text[end:end + 1]
        return not following or following.isspace() or following in ";{}"


@dataclass
class Command:
    words: List[Word]
    line: int


@dataclass
class Block:
    """``menuentry`` or ``submenu``: its arguments and its body, unexpanded."""

    kind: str
    words: List[Word]
    body: List["Node"]
    line: int


@dataclass
class Branches:
    """An ``if`` chain: the command lists of every branch, conditions dropped."""

    lists: List[List["Node"]] = field(default_factory=list)


@dataclass
class Skipped:
    """A loop or function definition: never read (see :mod:`.grub2`)."""

    kind: str
    line: int


Node = Union[Command, Block, Branches, Skipped]


class _Parser:
    def __init__(self, tokens: List[Token], name: str, nesting: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.name = name
        self.nesting = nesting
        self.notes: List[str] = []

    def peek(self) -> Optional[Token]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def reserved(self) -> Optional[str]:
        token = self.peek()
        if token is None or token[0] != _WORD:
            return None
        word = literal(token[2])
        return word if word in _RESERVED else None

    def words(self) -> List[Word]:
        tokens, pos, end = self.tokens, self.pos, len(self.tokens)
        start = pos
        while pos < end and tokens[pos][0] == _WORD:
            pos += 1
        self.pos = pos
        return [token[2] for token in tokens[start:pos]]

    def expect(self, wanted: str, what: str) -> None:
        token = self.peek()
        if token is None:
            raise GrubSyntaxError(f"end of file before {what}")
        if token[0] != wanted:
            raise GrubSyntaxError(f"line {token[1]}: expected {what}")
        self.pos += 1

    def statements(self, depth: int, until: Set[str]) -> List[Node]:
        """Commands up to one of *until* (reserved words or ``}``), not consumed."""
        if depth > self.nesting:
            raise MenuError(f"{self.name}: blocks nested deeper than {self.nesting}")
        nodes: List[Node] = []
        while True:
            token = self.peek()
            if token is None:
                if until:
                    raise GrubSyntaxError(f"end of file before {' or '.join(sorted(until))}")
                return nodes
            if token[0] == _SEP:
                self.pos += 1
                continue
            word = self.reserved()
            if word in until or (token[0] == _CLOSE and "}" in until):
                return nodes
            if token[0] == _CLOSE:
                self.notes.append(f"{self.name}: line {token[1]}: stray '}}' ignored")
                self.pos += 1
                continue
            nodes.append(self.statement(depth, word, token))

    def statement(self, depth: int, word: Optional[str], token: Token) -> Node:
        if word == "if":
            return self.if_chain(depth)
        if word in ("for", "while", "until"):
            self.pos += 1
            self.statements(depth + 1, {"do"})
            self.pos += 1
            self.statements(depth + 1, {"done"})
            self.pos += 1
            return Skipped(word, token[1])
        if word == "function":
            self.pos += 1
            self.words()
            self.body(depth)
            return Skipped(word, token[1])
        if word in ("menuentry", "submenu"):
            self.pos += 1
            args = self.words()
            return Block(word, args, self.body(depth), token[1])
        if word is not None:
            raise GrubSyntaxError(f"line {token[1]}: unexpected '{word}'")
        if token[0] == _OPEN:
            return Branches([self.body(depth)])
        return Command(self.words(), token[1])

    def body(self, depth: int) -> List[Node]:
        while self.pos < len(self.tokens) and self.tokens[self.pos][0] == _SEP:
            self.pos += 1
        self.expect(_OPEN, "'{'")
        nodes = self.statements(depth + 1, {"}"})
        self.expect(_CLOSE, "'}'")
        return nodes

    def if_chain(self, depth: int) -> Branches:
        chain = Branches()
        self.pos += 1
        while True:
            self.statements(depth + 1, {"then"})
            self.pos += 1
            chain.lists.append(self.statements(depth + 1, {"elif", "else", "fi"}))
            word = self.reserved()
            self.pos += 1
            if word == "fi":
                return chain
            if word == "else":
                chain.lists.append(self.statements(depth + 1, {"fi"}))
                self.pos += 1
                return chain


def parse_script(text: str, name: str, nesting: int,
                 max_tokens: int) -> Tuple[List[Node], List[str], int]:
    """The tree of *text*, notes, and the tokens it took; a syntax error ends it there.

    Nesting deeper than *nesting* or more than *max_tokens* words raise
    :class:`MenuError` (refused whole: such a file is hostile, not mistaken).
    """
    notes: List[str] = []
    lexer = _Lexer(text, name, max_tokens)
    try:
        tokens = lexer.run()
    except GrubSyntaxError as exc:
        notes.append(f"{name}: {exc}; the rest is ignored")
        tokens = lexer.tokens
    parser = _Parser(tokens, name, nesting)
    nodes: List[Node] = []
    try:
        while True:
            token = parser.peek()
            if token is None:
                break
            if token[0] in (_SEP, _CLOSE):
                if token[0] == _CLOSE:
                    notes.append(f"{name}: line {token[1]}: stray '}}' ignored")
                parser.pos += 1
                continue
            nodes.append(parser.statement(0, parser.reserved(), token))
    except GrubSyntaxError as exc:
        notes.append(f"{name}: {exc}; the rest is ignored")
    return nodes, notes + parser.notes, len(tokens)
