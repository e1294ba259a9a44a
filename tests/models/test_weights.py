"""The default I3D download: cached in torch hub's folder, checked, with clear errors offline (nothing is fetched)."""

from urllib.error import URLError

import pytest
import torch

from torchmetrics_ext.models import InceptionI3d
from torchmetrics_ext.models import weights as weights_module


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


def _fake_download(calls):
    def download(url, dst, progress=True):
        calls.append(url)
        torch.save(InceptionI3d().state_dict(), dst)  # random weights stand in for the real file

    return download


def test_downloads_once_into_the_hub_checkpoint_folder_and_loads(hub_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fake_download(calls))
    model = weights_module.default_i3d(progress=False)
    assert isinstance(model, InceptionI3d) and not model.training
    path = hub_dir / "checkpoints" / "i3d_pretrained_400.pt"
    assert path.is_file() and (hub_dir / "checkpoints" / "i3d_pretrained_400.pt.sha256").is_file()
    assert weights_module.i3d_weights_path(progress=False) == path
    assert calls == [weights_module.I3D_URL]  # the second call used the cached file


def test_offline_the_error_says_what_to_download_and_where(hub_dir, monkeypatch):
    def offline(url, dst, progress=True):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError, match="Could not download") as error:
        weights_module.i3d_weights_path(progress=False)
    assert weights_module.I3D_URL in str(error.value)
    assert str(hub_dir / "checkpoints" / "i3d_pretrained_400.pt") in str(error.value)


def test_a_file_changed_after_its_download_is_rejected(hub_dir, monkeypatch):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fake_download([]))
    path = weights_module.i3d_weights_path(progress=False)
    with open(path, "ab") as file:
        file.write(b"corruption")
    with pytest.raises(RuntimeError, match="SHA-256 differs"):
        weights_module.i3d_weights_path(progress=False)


def test_a_file_that_is_not_i3d_weights_is_rejected(hub_dir, monkeypatch):
    def wrong_file(url, dst, progress=True):
        torch.save({"conv.weight": torch.zeros(3)}, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", wrong_file)
    with pytest.raises(RuntimeError, match="not usable"):
        weights_module.default_i3d(progress=False)
