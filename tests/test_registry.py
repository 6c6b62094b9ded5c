"""registry.py: names to objects, the one-sentence error with a suggestion, metadata filters."""
from __future__ import annotations

import pytest

from cnnkit.errors import CnnkitError
from cnnkit.registry import Registry


@pytest.fixture()
def models() -> Registry:
    reg = Registry("model")
    for name, tasks in (("lenet5", ("classify",)), ("resnet20", ("classify",)), ("tinydet", ("detect",)),
                        ("unet", ("segment", "instance"))):
        reg.register(name, tasks=tasks, size=len(name))(lambda n=name: n)
    return reg


def test_get_unknown_name_is_one_sentence_with_a_suggestion(models):
    with pytest.raises(CnnkitError) as e:
        models.get("lenet6")
    assert str(e.value) == 'Unknown model "lenet6". Did you mean "lenet5"? Known: lenet5, resnet20, tinydet, unet.'
    with pytest.raises(CnnkitError) as e:
        Registry("task").get("xyz")
    assert str(e.value) == 'Unknown task "xyz". Known: (none).'
    assert models.get("unet")() == "unet"


def test_register_twice_refuses_a_different_object_only(models):
    builder = models.get("lenet5")
    assert models.register("lenet5", tasks=("classify",))(builder) is builder  # a re-import is harmless
    with pytest.raises(ValueError, match="model 'lenet5' is registered twice"):
        models.register("lenet5")(lambda: None)


def test_list_filters_by_pattern_and_metadata(models):
    assert models.list() == list(models) == ["lenet5", "resnet20", "tinydet", "unet"]
    assert models.list("*net*") == ["lenet5", "resnet20", "unet"]
    assert models.list(task="classify") == ["lenet5", "resnet20"]  # task= matches a tasks=(...) tuple
    assert models.list(task="instance") == ["unet"]
    assert models.list("l*", size=6) == ["lenet5"] and models.list(size=99) == []
    assert models.meta("tinydet") == {"tasks": ("detect",), "size": 7}
    assert "unet" in models and "vgg" not in models
    with pytest.raises(CnnkitError, match='Unknown model "tinydett"'):
        models.meta("tinydett")
