"""Training curves from the ``metrics.csv`` of a Lightning ``CSVLogger``, written as PNG files."""

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["best_step", "default_mode", "plot_training_log"]

_MAX_KEYWORDS = ("accuracy", "psnr", "ssim", "consistency", "flickering")
_PLOT_HINT = 'plotting needs matplotlib: pip install "torchmetrics-ext[plot]"'


def default_mode(monitor: str) -> str:
    """The direction in which ``monitor`` improves when none is given.

    The rule: ``"max"`` when the name (case-insensitive) contains ``accuracy``, ``psnr``, ``ssim``, ``consistency``
    or ``flickering`` (higher is better), ``"min"`` otherwise (losses, perplexity, FVD, KVD, warping error, ...).

    Args:
        monitor: a logged name, such as ``"val/loss"`` or ``"val/accuracy"``.

    Example:
        >>> default_mode("val/accuracy"), default_mode("val/fvd")
        ('max', 'min')

    """
    name = monitor.lower()
    return "max" if any(keyword in name for keyword in _MAX_KEYWORDS) else "min"


def _read_log(csv_path: Union[str, Path]) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(csv_path)
    if not path.is_file():
        found = "it is a folder" if path.is_dir() else "it does not exist"
        raise ValueError(f"Training log {str(path)!r} expected to be a CSV file, but {found}.")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    if "step" not in columns:
        raise ValueError(
            f"Training log {str(path)!r} expected a `step` column (a Lightning `CSVLogger` metrics.csv), but got"
            f" columns {columns}."
        )
    return columns, rows


def _number(cell: Optional[str]) -> Optional[float]:
    """The value of a cell, None when it is empty or not a number."""
    if cell is None or not cell.strip():
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def _series(rows: list[dict[str, str]], column: str) -> tuple[list[float], list[float]]:
    """The (steps, values) of the rows that have a value in ``column``."""
    steps, values = [], []
    for row in rows:
        step, value = _number(row.get("step")), _number(row.get(column))
        if step is not None and value is not None:
            steps.append(step)
            values.append(value)
    return steps, values


def _best(
    csv_path: Union[str, Path], columns: list[str], rows: list[dict[str, str]], monitor: str, mode: Optional[str]
) -> tuple[int, Optional[int], float]:
    if monitor not in columns:
        raise ValueError(
            f"Argument `monitor` expected a column of the training log {str(csv_path)!r}, but got {monitor!r};"
            f" the columns are {columns}."
        )
    mode = default_mode(monitor) if mode is None else mode
    if mode not in ("min", "max"):
        raise ValueError(f"Argument `mode` expected 'min', 'max' or None, but got {mode!r}.")
    best = None
    for row in rows:
        step, value = _number(row.get("step")), _number(row.get(monitor))
        if step is None or value is None or math.isnan(value):
            continue
        if best is None or (value < best[2] if mode == "min" else value > best[2]):
            epoch = _number(row.get("epoch"))
            best = (int(step), None if epoch is None else int(epoch), value)
    if best is None:
        raise ValueError(f"Column {monitor!r} of the training log {str(csv_path)!r} expected a value, but has none.")
    return best


def best_step(csv_path: Union[str, Path], monitor: str, mode: Optional[str] = None) -> tuple[int, Optional[int], float]:
    """The best logged value of ``monitor``: the first row reaching it, as ``(step, epoch, value)``.

    Args:
        csv_path: the ``metrics.csv`` written by ``lightning.pytorch.loggers.CSVLogger``.
        monitor: the column to rank rows by, such as ``"val/loss"``; NaN cells are skipped.
        mode: ``"min"`` or ``"max"``; when None, :func:`default_mode` of ``monitor``.

    Raises:
        ValueError: if the file is missing, has no ``step`` column, ``monitor`` is not one of its columns or has no
            value, or ``mode`` is unknown.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     log = Path(tmp) / "metrics.csv"
        ...     _ = log.write_text("epoch,step,val/loss\\n0,9,2.5\\n1,19,1.5\\n2,29,1.75\\n")
        ...     best_step(log, "val/loss")
        (19, 1, 1.5)

    """
    columns, rows = _read_log(csv_path)
    return _best(csv_path, columns, rows, monitor, mode)


def _groups(columns: list[str]) -> dict[str, list[str]]:
    """File stem -> columns drawn in it."""
    groups: dict[str, list[str]] = {}
    for column in columns:
        if column in ("epoch", "step") or column.startswith("health/"):
            continue
        base = column
        for suffix in ("_step", "_epoch"):  # ``self.log(..., on_step=True, on_epoch=True)`` names
            base = base[: -len(suffix)] if base.endswith(suffix) else base
        if base.endswith("loss"):
            stem = "loss"
        elif "perplexity" in base:
            stem = "perplexity"
        elif base.startswith("train/grad_norm"):
            stem = "train_grad_norm"
        elif base.startswith("train/lr"):
            stem = "train_lr"
        elif column.startswith("val/"):
            stem = column.replace("/", "_")
        else:
            continue
        groups.setdefault(stem, []).append(column)
    return groups


def plot_training_log(
    csv_path: Union[str, Path],
    out_dir: Union[str, Path],
    monitor: Optional[str] = None,
    mode: Optional[str] = None,
) -> list[Path]:
    """Draw the curves of a Lightning ``CSVLogger`` log against ``step`` and save them as PNG files.

    The files, written into ``out_dir`` (created if needed), each with the columns that have a value:

    - ``loss.png``: every column whose name ends in ``loss`` (``train/loss``, ``val/loss``; a ``_step`` or
      ``_epoch`` suffix added by Lightning is ignored for the match);
    - ``perplexity.png``: every column whose name contains ``perplexity``;
    - ``train_grad_norm.png`` and ``train_lr.png``: the ``train/grad_norm*`` and ``train/lr*`` columns of
      :class:`~torchmetrics_ext.callbacks.TrainingHealthMonitor`;
    - one file per other ``val/...`` column, named after it with ``/`` replaced by ``_`` (``val_fvd.png``).

    Other columns are not drawn; the ``health/<symptom>`` columns are markers, not curves: each step where one has a
    non-zero value (the monitor logs 1) gets a dotted red vertical line labelled with the symptom on every plot.
    With ``monitor``, the first row with its best value gets a dashed vertical line labelled
    ``best <monitor> (epoch N)`` on every plot.

    Args:
        csv_path: the ``metrics.csv`` written by ``lightning.pytorch.loggers.CSVLogger``.
        out_dir: the folder the PNG files are written into.
        monitor: a column whose best row is marked, such as ``"val/loss"``; None marks none.
        mode: ``"min"`` or ``"max"``, the direction in which ``monitor`` improves. When None: ``"max"`` if the
            name contains ``accuracy``, ``psnr``, ``ssim``, ``consistency`` or ``flickering``, else ``"min"``
            (see :func:`default_mode`).

    Returns:
        The sorted paths of the files written.

    Raises:
        ValueError: if the file is missing, has no ``step`` column, or ``monitor`` is not one of its columns (the
            message lists them) or has no value.
        ModuleNotFoundError: if matplotlib is not installed (``pip install "torchmetrics-ext[plot]"``).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     log = Path(tmp) / "metrics.csv"
        ...     _ = log.write_text(
        ...         "epoch,health/plateau,step,train/loss,val/fvd,val/loss\\n"
        ...         "0,,4,2.0,,\\n"
        ...         "0,,4,,310.0,2.25\\n"
        ...         "1,1.0,9,,,\\n"
        ...         "1,,9,1.5,,\\n"
        ...         "1,,9,,280.0,2.5\\n"
        ...     )
        ...     paths = plot_training_log(log, Path(tmp) / "plots", monitor="val/fvd")
        ...     [path.name for path in paths]
        ['loss.png', 'val_fvd.png']

    """
    out = Path(out_dir)
    figures = _training_figures(csv_path, monitor, mode)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, fig in figures.items():
        path = out / f"{stem}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return sorted(written)


def _training_figures(csv_path: Union[str, Path], monitor: Optional[str], mode: Optional[str]) -> dict[str, "Figure"]:
    """File stem -> matplotlib ``Figure`` of :func:`plot_training_log`, not saved."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(_PLOT_HINT) from error

    columns, rows = _read_log(csv_path)
    best = None if monitor is None else _best(csv_path, columns, rows, monitor, mode)
    markers = []  # (step, symptom), one per step at which a symptom was logged
    for column in columns:
        if column.startswith("health/"):
            steps, values = _series(rows, column)
            found = sorted({step for step, value in zip(steps, values) if value != 0 and not math.isnan(value)})
            markers += [(step, column[len("health/") :]) for step in found]

    figures = {}
    for stem, group in _groups(columns).items():
        curves = [(column, *_series(rows, column)) for column in group]
        curves = [curve for curve in curves if curve[1]]
        if not curves:
            continue
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot()
        for column, steps, values in curves:
            ax.plot(steps, values, marker="." if len(steps) < 50 else None, label=column)
        if best is not None:
            epoch = "" if best[1] is None else f" (epoch {best[1]})"
            ax.axvline(best[0], color="black", linestyle="--", linewidth=1, label=f"best {monitor}{epoch}")
        labelled = set()
        for step, symptom in markers:
            ax.axvline(step, color="red", linestyle=":", linewidth=1, label=None if symptom in labelled else symptom)
            labelled.add(symptom)
        ax.set_xlabel("step")
        ax.set_title(stem)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        figures[stem] = fig
    return figures
