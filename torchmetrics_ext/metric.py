"""The base class of every metric of the package: a ``torchmetrics.Metric`` whose states are kept safe."""

import functools
from typing import Any, Callable, Optional, Sequence, Union

from lightning_utilities import apply_to_collection
from torch import Tensor
from torch.nn import Module
from torchmetrics import Metric
from torchmetrics.utilities.plot import _AX_TYPE, _PLOT_OUT_TYPE

# What ``Metric.forward`` changes on the way to ``update`` besides the states, restored when ``update`` raises.
_FORWARD_CONTEXT = ("_update_count", "_computed", "_to_sync", "_should_unsync", "compute_on_cpu", "_enable_grad")


class StateSafeMetric(Metric):
    """A ``Metric`` whose states keep their declared dtype, and are left as they were by a call that raises.

    - ``torchmetrics.Metric`` guards its states against ``.half()`` and ``.bfloat16()`` but not against
      ``module.to(torch.bfloat16)``, which is what Lightning's ``precision="bf16-true"`` calls: float64 sums would
      silently become bfloat16 and keep three significant digits. Here the states, their defaults and the cached
      results follow the module to its device and never change dtype, whatever the cast (``set_dtype``
      included: the states' dtypes are part of the metric's definition).
    - ``forward`` resets the states before it calls ``update`` on the batch; when ``update`` rejects the batch,
      the states accumulated so far, the update count and the cached result are put back.
    - Networks and other helpers held with ``_hold`` stay out of ``state_dict`` and follow the device, not the dtype.
    - ``plot`` draws ``compute()`` or the values given, with the bounds the subclass declares.
    """

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> Module:
        states = [key for key in self._defaults if key not in exclude_state]
        dtype, computed, forward_cache = self._dtype, self._computed, self._forward_cache
        this = super()._apply(fn, exclude_state=(*exclude_state, *states))
        move = functools.partial(_to_device, device=this.device)
        for key in states:
            this._defaults[key] = move(this._defaults[key])
            setattr(this, key, move(getattr(this, key)))
        this._computed = apply_to_collection(computed, Tensor, move)
        this._forward_cache = apply_to_collection(forward_cache, Tensor, move)
        this._dtype = dtype
        for name in this.__dict__.get("_held", ()):
            held = getattr(this, name)
            if isinstance(held, Module):
                held.to(device=this.device)  # the device only: a held network keeps its dtype
        return this

    def _hold(self, name: str, value: Any) -> None:
        """Keep ``value`` (a frozen network, a scratch metric) as the attribute ``name``, outside the module tree.

        It is not in ``state_dict`` or ``parameters()``, and a held module follows the metric to its device but not
        to another dtype: the features of ``module.to(torch.bfloat16)`` must be those of the float32 network.
        """
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_held", (*self.__dict__.get("_held", ()), name))

    def _wrap_update(self, update: Callable) -> Callable:
        wrapped = super()._wrap_update(update)

        @functools.wraps(update)
        def update_or_nothing(*args: Any, **kwargs: Any) -> None:
            update_count, computed = self._update_count, self._computed
            try:
                wrapped(*args, **kwargs)
            except Exception:
                self._update_count, self._computed = update_count, computed
                raise

        return update_or_nothing

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Update the states with a batch and return the metric of that batch alone (see ``Metric.forward``)."""
        saved = {**self._copy_state_dict(), **{name: getattr(self, name) for name in _FORWARD_CONTEXT}}
        try:
            return super().forward(*args, **kwargs)
        except Exception:
            for name, value in saved.items():
                setattr(self, name, value)
            raise

    def plot(
        self, val: Optional[Union[Tensor, Sequence[Tensor]]] = None, ax: Optional[_AX_TYPE] = None
    ) -> _PLOT_OUT_TYPE:
        """Plot one value or a sequence of values of the metric (``compute()`` when ``val`` is None).

        Args:
            val: a value or a sequence of values returned by ``forward`` or ``compute``.
            ax: a matplotlib axis to draw on; a new figure when None.

        Returns:
            The figure and the axis.

        Example:
            >>> import torch
            >>> from torchmetrics_ext.text import CausalLMPerplexity
            >>> metric = CausalLMPerplexity()
            >>> values = [metric(torch.randn(2, 8, 5), torch.randint(5, (2, 8))) for _ in range(4)]
            >>> fig_, ax_ = metric.plot(values)

        """
        return self._plot(val, ax)


def _to_device(value: Any, device: Any) -> Any:
    """Move a state (a tensor or a list of tensors) to ``device``, keeping its dtype."""
    if isinstance(value, Tensor):
        return value.to(device=device)
    return [item.to(device=device) for item in value]
