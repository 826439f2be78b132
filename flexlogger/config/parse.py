"""Config and preset files -> plain data: YAML (safe loader only) and JSON, with limits against hostile input.

This is the only module that imports ``yaml``. It only ever uses the safe loader, so a file builds plain data
(mappings, lists, strings, numbers, booleans, null), never Python objects; and it refuses what would make loading
hang or blow up memory: files over ``MAX_FILE_BYTES``, more than ``MAX_ALIASES`` aliases or ``MAX_NODES`` values
once aliases are expanded (a "billion laughs" file), nesting deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import yaml

from flexlogger.errors import ConfigError, short_repr

SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


MAX_FILE_BYTES = 1 << 20  # a config file is a few KiB; more is a mistake (or an attack)
MAX_ALIASES = 100  # YAML aliases (*name) in one config: enough for any shared block, too few for billion laughs
MAX_NODES = 100_000  # values in a config once every alias is expanded
MAX_DEPTH = 64  # nesting of mappings and lists (a real config nests 4 or 5 deep)


class _SafeLoader(yaml.SafeLoader):
    """YAML's safe loader, which also records duplicate keys (plain YAML keeps the last one silently) and refuses
    documents that would expand past ``MAX_ALIASES`` aliases, ``MAX_NODES`` values or ``MAX_DEPTH`` levels."""

    def __init__(self, stream: str, source: str = "config") -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []
        self.source = source
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.source}:{mark.line + 1}: more than {MAX_ALIASES} YAML aliases (*name); "
                                  f"expected at most {MAX_ALIASES} (a config that repeats a block this often is "
                                  "refused: its expansion could be huge)")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConfigError(_too_deep(f"{self.source}:{self.peek_event().start_mark.line + 1}", "mappings and lists"))
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expanded_size(node, self.source)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append(f"line {line}: duplicate key {short_repr(key)} (first at line {seen[key]}); "
                                       "expected each name once in a mapping")
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_text(text: str, source: str, fmt: str = "yaml") -> tuple[Any, list[str]]:
    """Parse YAML (safe loader only) or JSON text; return the data and the duplicate-key problems.

    Raises:
        ConfigError: the text is not valid YAML/JSON, it uses a YAML tag that would build a Python object, it is
            longer than ``MAX_FILE_BYTES``, uses more than ``MAX_ALIASES`` YAML aliases, expands to more than
            ``MAX_NODES`` values, or nests deeper than ``MAX_DEPTH``.
    """
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_FILE_BYTES else len(text)
    if size > MAX_FILE_BYTES:
        raise ConfigError(_too_large(source, size))
    if fmt == "json":
        duplicates: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in items:
                if key in out:
                    duplicates.append(f"duplicate key {key!r} in one object; expected each name once")
                out[key] = value
            return out

        try:
            data = json.loads(text, object_pairs_hook=pairs)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except RecursionError:
            raise ConfigError(_too_deep(source, "objects and arrays")) from None
        _check_depth(data, source)
        return data, duplicates
    loader = _SafeLoader(text, source)
    try:
        data = loader.get_single_data()
    except yaml.constructor.ConstructorError as exc:
        where = f"{source}:{exc.problem_mark.line + 1}" if exc.problem_mark else source
        raise ConfigError(f"{where}: {exc.problem}; config files are read with YAML's safe loader, which builds "
                          "only plain data (mappings, lists, strings, numbers, true/false, null): a tag such as "
                          "!!python/object that would import or run code is not allowed") from None
    except RecursionError:
        raise ConfigError(_too_deep(source, "mappings and lists")) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, loader.duplicates


def read_file(path: str | Path) -> tuple[Any, list[str]]:
    """Read a ``.yaml``/``.yml``/``.json`` file: the parsed data and its duplicate-key problems."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"config file {str(path)!r}: unknown suffix {path.suffix!r}; expected one of "
                          f"{', '.join(SUFFIXES)}")
    try:
        info = path.stat()
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):  # a FIFO or a device: blocks, no end
            raise ConfigError(f"config file {str(path)!r} is not a regular file; expected the path of a .yaml, .yml "
                              "or .json file")
        size = info.st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(_too_large(str(path), size))
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)  # a file growing since stat() is still read no further
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(_too_large(str(path), len(data)))
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: byte {exc.start} is not UTF-8 ({exc.reason}); expected a "
                          "UTF-8 text file") from None
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found (working directory: {Path.cwd()}); expected "
                          "the path of a .yaml, .yml or .json file") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} could not be read: {exc.strerror or exc}") from None
    return parse_text(text, str(path), fmt)


def _too_large(source: str, size: int) -> str:
    return (f"config file {source!r} is {size} bytes; expected at most {MAX_FILE_BYTES} bytes (1 MiB): a config "
            "holds definitions and options, not data")


def _too_deep(where: str, what: str) -> str:
    return f"{where}: nested more than {MAX_DEPTH} levels deep; expected at most {MAX_DEPTH} levels of {what}"


def _check_expanded_size(root: yaml.Node, source: str) -> None:
    """Refuse a YAML document whose values, once every alias is expanded, exceed ``MAX_NODES`` (billion laughs).

    Sizes are counted per node once (memoised), so this is linear in the document, not in its expansion.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not children_done:
            if key in active:
                raise ConfigError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to a value that holds "
                                  "it (a recursive structure); expected plain, finite data")
            active.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        active.discard(key)
        total = 1 + sum(sizes.get(id(c), 0) for c in children)
        if total > MAX_NODES:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: this value expands (through YAML aliases) to "
                              f"more than {MAX_NODES} values; expected at most {MAX_NODES} in a config")
        sizes[key] = total


def _check_depth(data: Any, source: str) -> None:
    """Refuse JSON data nested deeper than ``MAX_DEPTH`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ConfigError(_too_deep(source, "objects and arrays"))
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def dump_text(data: Any, fmt: str, header: str = "") -> str:
    """Plain ``data`` as YAML or JSON text (``fmt``: ``yaml`` or ``json``); ``header`` becomes a YAML comment."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    comment = f"# {header}\n" if header else ""
    return comment + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)

