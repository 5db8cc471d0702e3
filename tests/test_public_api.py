"""The public namespace: sorted, complete, and every name importable."""

from __future__ import annotations

import pytest_crystallize


def test_all_is_sorted_and_unique() -> None:
    names = pytest_crystallize.__all__
    assert list(names) == sorted(names)
    assert len(set(names)) == len(names)


def test_every_public_name_exists_and_nothing_public_is_unlisted() -> None:
    missing = [n for n in pytest_crystallize.__all__ if not hasattr(pytest_crystallize, n)]
    assert missing == []
    unlisted = {
        n for n, v in vars(pytest_crystallize).items()
        if not n.startswith("_") and not isinstance(v, type(pytest_crystallize)) and n != "annotations"
    } - set(pytest_crystallize.__all__)
    assert unlisted == set()


def test_errors_share_one_root_and_the_builtins_callers_expect() -> None:
    from pytest_crystallize import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        root = errors.CrystallizeWarning if issubclass(cls, Warning) else errors.CrystallizeError
        assert issubclass(cls, root)
    assert issubclass(errors.ContextMutationError, KeyError)
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.DataSourceError, LookupError)


def test_each_lazy_name_is_the_object_its_type_checking_import_names() -> None:
    # The names load lazily (PEP 562); the imports under TYPE_CHECKING are what type checkers see.
    import ast
    import importlib
    from pathlib import Path

    tree = ast.parse(Path(pytest_crystallize.__file__).read_text())
    (block,) = [node for node in tree.body if isinstance(node, ast.If)]
    imported = {
        alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert sorted(imported) == sorted(pytest_crystallize.__all__)
    for name, module in imported.items():
        assert getattr(pytest_crystallize, name) is getattr(importlib.import_module(str(module)), name), name
    assert set(pytest_crystallize.__all__) <= set(dir(pytest_crystallize))
