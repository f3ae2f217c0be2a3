"""The error tree: every exception class in `parallax` derives from `ParallaxError`, is
drawn in `parallax._errors`' docstring under the class it derives from, with the builtin
it also derives from, and docs/errors.md draws the same tree."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest

import parallax
from parallax import _errors
from parallax._errors import ParallaxError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
_ENTRY = re.compile(r"^(?P<indent>(?:│   |    )*)(?:├── |└── )(?P<name>\w+)(?:\((?P<base>\w+)\))?")


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a parallax module, by name (names are unique)."""
    found: set[type[BaseException]] = set()
    for info in pkgutil.walk_packages(parallax.__path__, "parallax."):
        if info.name.endswith(".__main__"):  # runs the CLI when imported
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("parallax")  # not a builtin or a library's
            ):
                found.add(obj)
    by_name = {cls.__name__: cls for cls in found}
    assert len(by_name) == len(found), (
        f"two exception classes share a name: {sorted(found, key=str)}"
    )
    return by_name


def _tree(text: str) -> list[tuple[int, str, str | None]]:
    """(depth, name, builtin base) per drawn entry; the root is depth 0."""
    lines = [line for line in textwrap.dedent(text).splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.strip() == "ParallaxError")
    entries: list[tuple[int, str, str | None]] = [(0, "ParallaxError", None)]
    for line in lines[start + 1 :]:
        line = line.strip("\n")
        match = _ENTRY.match(line.lstrip(" ") if not line.startswith(("├", "└", "│")) else line)
        if match is None:
            break
        depth = len(match["indent"]) // 4 + 1
        entries.append((depth, match["name"], match["base"]))
    return entries


def _docstring_tree() -> list[tuple[int, str, str | None]]:
    doc = _errors.__doc__ or ""
    block = doc[doc.index("    ParallaxError") :].split("\n\n")[0]
    return _tree(block)


def test_every_exception_class_is_a_parallax_error() -> None:
    classes = _exception_classes()
    assert {"ParallaxError", "FlowError", "CudaError", "FrameError", "EndOfStream"} <= set(classes)
    strays = sorted(name for name, cls in classes.items() if not issubclass(cls, ParallaxError))
    assert not strays, f"not under ParallaxError: {strays}"


def test_every_exception_class_is_drawn_in_the_tree() -> None:
    drawn = {name for _, name, _ in _docstring_tree()}
    missing = sorted(set(_exception_classes()) - drawn)
    assert not missing, f"add to parallax/_errors.py's tree: {missing}"


def test_the_drawing_matches_the_classes() -> None:
    classes = _exception_classes()
    parents: list[str] = []
    for depth, name, base in _docstring_tree():
        assert name in classes, f"the tree draws {name}, which does not exist"
        cls = classes[name]
        parents[depth:] = [name]
        if depth:
            parent = classes[parents[depth - 1]]
            assert issubclass(cls, parent), f"{name} is drawn under {parent.__name__}"
            assert cls.__bases__[0] is parent, f"{name}: first base {cls.__bases__[0].__name__}"
        builtins = [b.__name__ for b in cls.__bases__[1:]]
        assert builtins == ([base] if base else []), f"{name} is drawn ({base}), has {builtins}"


def test_docs_draw_the_same_tree() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text[text.index("```text\nParallaxError") + len("```text\n") :].split("```")[0]
    assert _tree(block) == _docstring_tree()


def test_the_tree_parser_reads_nesting() -> None:
    drawn = _tree("ParallaxError\n├── A(ValueError)  x\n│   └── B  y\n└── C  z\n")
    assert drawn == [
        (0, "ParallaxError", None),
        (1, "A", "ValueError"),
        (2, "B", None),
        (1, "C", None),
    ]


_ARGS: dict[str, tuple[object, ...]] = {"ParseError": ("bad element", "fakesrc ! x", 11)}


@pytest.mark.parametrize("name", sorted(_exception_classes()))
def test_every_error_pickles_with_its_message_and_attributes(name: str) -> None:
    cls = _exception_classes()[name]
    err = cls(*_ARGS.get(name, (f"{name}: boom",)))
    assert isinstance(err, ParallaxError)
    err.locate("fakesrc ! x", 11)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err) and vars(back) == vars(err)


def test_memory_errors_pickle_too() -> None:
    # MemoryError.__new__ refuses these classes: unpickling used to raise TypeError.
    from parallax import BudgetExceeded, PoolExhausted

    back = pickle.loads(
        pickle.dumps(PoolExhausted("pool0: all 4 slots on loan", pool="pool0", slots=4))
    )
    assert (str(back), back.pool, back.slots) == ("pool0: all 4 slots on loan", "pool0", 4)
    back2 = pickle.loads(pickle.dumps(BudgetExceeded("r: over", region="r", requested=9, free=1)))
    assert (back2.region, back2.requested, back2.free) == ("r", 9, 1)
    assert isinstance(back2, MemoryError)
