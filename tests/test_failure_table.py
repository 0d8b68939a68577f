"""The failure table ("What happens when...", docs/failures.md) is checked against the tests.

Every row must name at least one test, every named test must exist, and every
test in the fault modules must be named by some row. A name with a parameter
(``test_x[case]``) means that case; a bare name of a parametrized test means all
of its cases. ``python tests/test_failure_table.py`` prints a row for each test
that has none (a start for new rows).

Tests are found by importing the modules and reading their ``parametrize``
marks, not by running pytest again (that would cost seconds).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TABLE_FILE = TESTS.parent / "docs" / "failures.md"
#: The table's heading; the table runs from it to the next ``## `` heading (or the end of the file).
SECTION = "# What happens when..."
#: The modules whose every test is a case the table must show (optional ones join when they exist).
FAULT_MODULES = ["test_bad_images", "test_bad_datasets", "test_bad_models", "test_saving", "test_faults_devices",
                 "test_untrusted_paths", "test_crash_kill", "test_crash_disk", "test_crash_settings",
                 "test_soak_gallery"]
OPTIONAL_FAULT_MODULES = ["test_bad_camera", "test_gui_bad_input"]


def table_rows(text: str) -> list[tuple[str, str, list[str]]]:
    """(case, behaviour, [test ids]) for each row of the section's table (group headings skipped)."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    rows = []
    for line in text[start:end if end != -1 else None].splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 3 or set(cells[0]) <= set("-: ") or cells[0] == "Case":
            continue
        if cells[0].startswith("**") and not cells[1] and not cells[2]:
            continue  # a group heading
        rows.append((cells[0], cells[1], re.findall(r"`(test_\w+\.py::test_[^`]+)`", cells[2])))
    return rows


def _param_ids(fn) -> list[str] | None:
    """The ids pytest gives the cases of ``fn`` (None when it is not parametrized)."""
    marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
    if not marks:
        return None
    ids: list[str] = [""]
    for mark in marks:  # nearest the function first; pytest joins ids inner-first ("y-x")
        argnames, values = mark.args[0], list(mark.args[1])
        given = mark.kwargs.get("ids")
        names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else list(argnames)
        these = []
        for i, v in enumerate(values):
            if given is not None:
                these.append(str(given[i]))
            elif isinstance(v, (str, int, float, bool)) and len(names) == 1:
                these.append(str(v))
            else:
                these.append(f"{names[0]}{i}")
        ids = [f"{a}-{b}" if a else b for b in these for a in ids] if ids != [""] else these
    return ids


def collect(module_names: list[str]) -> dict[str, list[str] | None]:
    """``{"file.py::test_name": [case ids] or None}`` for the tests in the named modules."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    found = {}
    for name in module_names:
        mod = importlib.import_module(name)
        for attr, fn in vars(mod).items():
            if attr.startswith("test_") and inspect.isfunction(fn) and fn.__module__ == mod.__name__:
                found[f"{name}.py::{attr}"] = _param_ids(fn)
    return found


def _fault_modules() -> list[str]:
    return FAULT_MODULES + [m for m in OPTIONAL_FAULT_MODULES if (TESTS / f"{m}.py").is_file()]


def _expand(tests: dict[str, list[str] | None]) -> set[str]:
    return {f"{t}[{i}]" if ids is not None else t for t, ids in tests.items() for i in (ids or [None])}


def missing_rows() -> list[str]:
    """Test ids of the fault modules that no row names."""
    rows = table_rows(TABLE_FILE.read_text(encoding="utf-8"))
    named = {t for _, _, ids in rows for t in ids}
    tests = collect(_fault_modules())
    out = []
    for test_id in sorted(_expand(tests)):
        base = test_id.split("[")[0]
        if test_id not in named and base not in named:
            out.append(test_id)
    return out


def check_rows(rows: list[tuple[str, str, list[str]]]) -> None:
    """AssertionError unless every row says what happens and names only tests that exist."""
    named_modules = sorted({t.split(".py::")[0] for _, _, ids in rows for t in ids})
    tests = collect(sorted(set(named_modules) | set(_fault_modules())))
    existing = _expand(tests)
    for case, behaviour, ids in rows:
        assert ids, f"row {case!r} names no test"
        assert behaviour, f"row {case!r} says nothing about what happens"
        for test_id in ids:
            base, _, param = test_id.partition("[")
            if param:
                assert test_id in existing, f"row {case!r}: no test {test_id}"
            else:
                assert base in tests, f"row {case!r}: no test {test_id}"


def test_every_row_names_existing_tests():
    rows = table_rows(TABLE_FILE.read_text(encoding="utf-8"))
    assert len(rows) >= 40
    check_rows(rows)


def test_a_row_naming_a_missing_test_fails():
    """The check itself: a row naming a test that does not exist (or a case it lacks) is caught."""
    import pytest

    def table(tests: str) -> str:
        return ("# What happens when...\n\n| Case | What happens | Tests |\n| --- | --- | --- |\n"
                f"| A | refused | {tests} |\n")

    real = "`test_bad_images.py::test_invalid_image[zero-byte]`"
    check_rows(table_rows(table(real)))
    for bad in ("`test_bad_images.py::test_no_such_test`", "`test_bad_images.py::test_invalid_image[no-such-case]`"):
        with pytest.raises(AssertionError, match="no test"):
            check_rows(table_rows(table(f"{real}, {bad}")))


def test_every_fault_test_has_a_row():
    missing = missing_rows()
    assert missing == [], "tests without a row in docs/failures.md (python tests/test_failure_table.py):\n" + \
        "\n".join(missing)


def test_parser_sees_rows_and_ids():
    """The checker itself: a made-up table is read as intended (so the checks above can fail)."""
    text = ("## What happens when...\n\n| Case | What happens | Tests |\n| --- | --- | --- |\n| **Group** | | |\n"
            "| A | refused | `test_a.py::test_x[one]`, `test_a.py::test_y` |\n| B | fine | |\n\n## Next\n| C | x | y |\n")
    assert table_rows(text) == [("A", "refused", ["test_a.py::test_x[one]", "test_a.py::test_y"]), ("B", "fine", [])]

    import pytest

    @pytest.mark.parametrize("case", ["p", "q"])
    def test_demo(case):
        pass

    @pytest.mark.parametrize("v", [object()], ids=["thing"])
    def test_demo_ids(v):
        pass

    @pytest.mark.parametrize("x", [0, 1])
    @pytest.mark.parametrize("y", [2, 3])
    def test_demo_stacked(x, y):
        pass

    assert _param_ids(test_demo) == ["p", "q"] and _param_ids(test_demo_ids) == ["thing"]
    assert sorted(_param_ids(test_demo_stacked)) == ["2-0", "2-1", "3-0", "3-1"]  # as pytest names them
    assert _param_ids(test_parser_sees_rows_and_ids) is None


if __name__ == "__main__":
    for test_id in missing_rows():
        print(f"| ... | ... | `{test_id}` |")
