"""The base class of every metric of the package: a ``torchmetrics.Metric`` whose states keep their dtype."""

from typing import Any, Callable, Sequence

from torch import Tensor
from torch.nn import Module
from torchmetrics import Metric


class StableDtypeMetric(Metric):
    """A ``Metric`` whose states and their defaults keep the dtype they were declared with.

    ``torchmetrics.Metric`` guards its states against ``.half()`` and ``.bfloat16()`` but not against
    ``module.to(torch.bfloat16)``, which is what Lightning's ``precision="bf16-true"`` calls: float64 sums
    would silently become bfloat16 and lose all but three significant digits. Here the states follow the module
    to its new device and never change dtype, whatever the cast (``set_dtype`` included).
    """

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> Module:
        states = [key for key in self._defaults if key not in exclude_state]
        this = super()._apply(fn, exclude_state=(*exclude_state, *states))
        for key in states:
            this._defaults[key] = _move_keeping_dtype(fn, this._defaults[key])
            setattr(this, key, _move_keeping_dtype(fn, getattr(this, key)))
        return this


def _move_keeping_dtype(fn: Callable, value: Any) -> Any:
    """Apply ``fn`` for its device only: the result keeps the dtype of ``value``."""
    if isinstance(value, Tensor):
        return value.to(device=fn(value).device)
    return [_move_keeping_dtype(fn, item) for item in value]
