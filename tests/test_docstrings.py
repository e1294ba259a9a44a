"""Every public metric documents exactly the arguments its signature takes, and has a runnable example."""

import inspect
import re

import pytest

import torchmetrics_ext.callbacks as callbacks
import torchmetrics_ext.functional as functional
import torchmetrics_ext.models as models
import torchmetrics_ext.text as text
import torchmetrics_ext.video as video

PUBLIC = [
    getattr(module, name)
    for module in (text, functional, callbacks, video, models)
    for name in module.__all__
    if name != "TrainingHealthWarning"  # a warning category: no arguments, no example
]


def _documented_args(doc: str) -> list:
    block = doc.split("Args:\n", 1)[1]
    block = re.split(r"\n\s*(?:Returns|Raises|Example|Examples):", block, maxsplit=1)[0]
    indent = min(len(line) - len(line.lstrip()) for line in block.splitlines() if line.strip())
    return [
        re.match(r"\s*(\w+):", line).group(1)
        for line in block.splitlines()
        if line.strip() and len(line) - len(line.lstrip()) == indent
    ]


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda obj: obj.__name__)
def test_documented_arguments_match_the_signature(obj):
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    names = [name for name in signature.parameters if name != "self"]
    assert sorted(_documented_args(inspect.getdoc(obj) + "\n")) == sorted(names)
    assert ">>> " in obj.__doc__ and "Example:" in obj.__doc__
