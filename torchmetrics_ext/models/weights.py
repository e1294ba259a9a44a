"""The default I3D weights of the Fréchet Video Distance: downloaded once into torch hub's checkpoint folder.

``i3d_pretrained_400.pt`` is the Kinetics-400 I3D of VideoGPT, TATS and cd-fvd (pytorch-i3d layout, BatchNorm eps
1e-5). It is fetched from a revision-pinned address, so the bytes behind it cannot change; its SHA-256 digest is
recorded beside the file after the download and checked every time the file is used, and the file must load
strictly into :class:`~torchmetrics_ext.models.InceptionI3d` (every key and shape) before it is accepted. The
upstream digest is not pinned in the package yet: it could not be computed where this module was written, which had
no network access.
"""

import hashlib
import os
from pathlib import Path
from typing import Any, Callable
from urllib.error import URLError

import torch
from torch import nn

from torchmetrics_ext.models.i3d import load_i3d

I3D_FILE_NAME = "i3d_pretrained_400.pt"
I3D_URL = (
    "https://huggingface.co/spaces/LanguageBind/Open-Sora-Plan-v1.0.0/resolve/"
    "810fa8c4bdb3a4c8eec9bd57375c29bde6fb46de/opensora/eval/fvd/videogpt/i3d_pretrained_400.pt"
)


def _checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _where_to_put_it(path: Path) -> str:
    return f"Download {I3D_URL} yourself and put it at {path} (or pass `weights=<path>`)."


def i3d_weights_path(progress: bool = True) -> Path:
    """Return the path of the default I3D file, downloading it into torch hub's checkpoint folder the first time.

    Args:
        progress: whether to show a progress bar while downloading.

    Returns:
        ``<torch hub dir>/checkpoints/i3d_pretrained_400.pt``, checked against the digest recorded at its download.

    Raises:
        RuntimeError: if the file is missing and cannot be downloaded (offline, say), or if it no longer matches the
            digest recorded when it was downloaded; the message says what to download and where to put it.

    Example:
        >>> from torchmetrics_ext.models.weights import I3D_FILE_NAME
        >>> I3D_FILE_NAME
        'i3d_pretrained_400.pt'

    """
    path = _checkpoint_dir() / I3D_FILE_NAME
    recorded = path.with_name(path.name + ".sha256")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # one per process: DDP ranks may race here
        try:
            torch.hub.download_url_to_file(I3D_URL, str(partial), progress=progress)
            os.replace(partial, path)
        except (URLError, OSError) as error:
            raise RuntimeError(f"Could not download the I3D weights ({error}). {_where_to_put_it(path)}") from error
    if not recorded.is_file():  # downloaded now, or put there by hand: its digest is the one checked from now on
        recorded.write_text(_sha256(path) + "\n")
    elif recorded.read_text().strip() != _sha256(path):
        raise RuntimeError(
            f"The I3D weights at {path} changed since they were downloaded (SHA-256 differs from {recorded}): the"
            f" file is corrupt. Delete it to download it again. {_where_to_put_it(path)}"
        )
    return path


def default_i3d(progress: bool = True) -> nn.Module:
    """The frozen Kinetics-400 I3D of the FVD protocol, from the default weights file.

    Args:
        progress: whether to show a progress bar if the file has to be downloaded.

    Returns:
        A frozen :class:`~torchmetrics_ext.models.InceptionI3d` in eval mode.

    Raises:
        RuntimeError: if the file cannot be had or does not hold the weights of an InceptionI3d.

    Example:
        >>> from torchmetrics_ext.models.weights import default_i3d
        >>> callable(default_i3d)
        True

    """
    path = i3d_weights_path(progress)
    try:
        return load_i3d(path)
    except ValueError as error:
        raise RuntimeError(f"The I3D weights at {path} are not usable: {error} {_where_to_put_it(path)}") from error


def build_with_torchvision_weights(
    builder: Callable[..., nn.Module], name: str, weights: Any, otherwise: str, **kwargs: Any
) -> nn.Module:
    """``builder(weights=weights)`` for a torchvision weights enum member; offline, say what to download and where.

    Args:
        builder: a torchvision model builder such as ``raft_large`` or ``vit_b_16``.
        name: the model's name in the error message.
        weights: a member of the builder's weights enum.
        otherwise: what the user can do instead, ending the error message.
        kwargs: more keyword arguments of the builder (``progress``).

    Returns:
        The model with its weights, downloaded once into torch hub's checkpoint folder.

    Raises:
        RuntimeError: if the weights cannot be downloaded.

    Example:
        >>> from torchmetrics_ext.models.weights import build_with_torchvision_weights
        >>> callable(build_with_torchvision_weights)
        True

    """
    try:
        return builder(weights=weights, **kwargs)
    except (URLError, OSError) as error:
        target = _checkpoint_dir() / Path(weights.url).name
        raise RuntimeError(
            f"Could not download the {name} weights {weights} ({error}). Download {weights.url} yourself"
            f" and put it at {target}, {otherwise}."
        ) from error
