"""The one device picker: auto, cpu, cuda, cuda:N, and clear errors."""

import pytest
import torch

from crossdiff_core.device import pick_device


def test_cpu_and_auto_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(" CPU ") == torch.device("cpu")
    assert pick_device("auto", local_rank=3) == torch.device("cpu")


@pytest.mark.parametrize("setting", ["cuda", "cuda:0"])
def test_explicit_cuda_without_gpu_is_refused(monkeypatch, setting):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"adapt\.device is .*no CUDA device is visible"):
        pick_device(setting, what="adapt.device")


@pytest.mark.parametrize("setting", ["opencl", "cuda:x", "cuda:", "tpu", ""])
def test_unknown_setting_is_refused(setting):
    with pytest.raises(ValueError, match="pretrain.device must be one of auto, cpu, cuda"):
        pick_device(setting, what="pretrain.device")


def test_auto_and_cuda_with_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cuda") == torch.device("cuda")
    # Under DDP each process takes its local GPU.
    assert pick_device("auto", local_rank=0) == torch.device("cuda", 0)
    assert pick_device("cuda", local_rank=3) == torch.device("cuda", 1)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="only 2 CUDA device"):
        pick_device("cuda:2")


def test_auto_here_matches_the_machine():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
