"""The registry of variant kinds (harness/api/registry.py): built-ins load lazily from their
declaring modules, a name is registered once, and what a module declares must match its name."""

from __future__ import annotations

import pytest

from harness.api import registry
from harness.api.kind import Kind


def test_every_builtin_kind_loads_under_its_own_name() -> None:
    loaded = registry.kinds()
    assert list(loaded)[:len(registry.BUILTIN)] == list(registry.BUILTIN)
    for name, kind in loaded.items():
        assert kind.name == name


def test_families_and_training_flags_of_the_builtins() -> None:
    assert registry.kind("bm25").family == "sparse"
    assert not registry.kind("zero-shot").trains
    assert all(registry.kind(n).trains for n in ("inbatch", "random", "static", "star", "adore", "star+adore"))


def test_a_second_kind_under_a_taken_name_is_refused() -> None:
    class Twin(Kind):
        name = "star"

    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Twin())


def test_register_and_unregister_a_new_kind() -> None:
    class Toy(Kind):
        name = "toy-kind"

    toy = registry.register(Toy())
    try:
        assert registry.kind("toy-kind") is toy
    finally:
        registry.unregister("toy-kind")
    assert "toy-kind" not in registry.kinds()


def test_a_module_declaring_another_name_is_refused_and_leaves_no_partial_registry(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_KINDS", {})
    monkeypatch.setitem(registry.BUILTIN, "bm25", "harness.kinds.zero_shot")
    with pytest.raises(ValueError, match="declares kind 'zero-shot', registered as 'bm25'"):
        registry.kinds()
    assert registry._KINDS == {}


def test_the_registry_imports_nothing_above_the_declarations() -> None:
    import ast
    from pathlib import Path

    for module in ("registry", "kind", "params", "train_params"):
        tree = ast.parse(Path(registry.__file__).with_name(f"{module}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        ours = {m for m in imported if m.startswith("harness.")}
        # harness.data.collection appears only for type checking (Kind.rank's argument)
        assert ours <= {"harness.api.kind", "harness.api.params", "harness.data.collection"}, (module, ours)
