"""EMA teacher: hand-computed averages, fp32 shadows, buffers, resume and DDP-style wrappers."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from softpl.pl.teacher import EMATeacher


class Scalar(torch.nn.Module):
    """One scalar weight and a BatchNorm, enough to follow the average by hand."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([value]))
        self.norm = torch.nn.BatchNorm1d(1)


class Wrapper(torch.nn.Module):
    """Stands in for DistributedDataParallel: the real model sits in `.module`."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module


def _set(model: Scalar, value: float) -> None:
    with torch.no_grad():
        model.weight.fill_(value)


def test_two_updates_match_hand_computed_ema() -> None:
    student = Scalar(0.0)
    teacher = EMATeacher(student, decay=0.9)
    _set(student, 1.0)
    teacher.update(student)  # 0.9 * 0 + 0.1 * 1
    assert teacher.module.weight.item() == pytest.approx(0.1)
    _set(student, 2.0)
    teacher.update(student)  # 0.9 * 0.1 + 0.1 * 2
    assert teacher.module.weight.item() == pytest.approx(0.29)
    assert teacher.num_updates == 2
    assert not teacher.module.training
    assert not any(param.requires_grad for param in teacher.module.parameters())
    assert student.weight.requires_grad


def test_shadow_stays_fp32_for_a_bf16_student() -> None:
    student = Scalar(1.0).to(torch.bfloat16)
    teacher = EMATeacher(student, decay=0.999)
    _set(student, 1.015625)  # 1 + 2**-6, exact in bf16
    teacher.update(student)
    # 1 + 0.001 * 2**-6 = 1.0000156; a bf16 shadow would round back to exactly 1.0
    assert teacher.module.weight.dtype == torch.float32
    assert teacher.module.weight.item() == pytest.approx(1.0 + 0.001 * 2**-6, abs=1e-7)
    assert student.weight.dtype == torch.bfloat16


def test_batchnorm_statistics_are_averaged_and_its_counter_copied() -> None:
    student = Scalar()
    teacher = EMATeacher(student, decay=0.9)
    student.train()
    student.norm(torch.tensor([[2.0], [4.0]]))  # running_mean 0.1 * 3 = 0.3, running_var 0.9 + 0.1 * 2 = 1.1
    teacher.update(student)
    assert teacher.module.norm.running_mean.item() == pytest.approx(0.9 * 0.0 + 0.1 * 0.3)
    assert teacher.module.norm.running_var.item() == pytest.approx(0.9 * 1.0 + 0.1 * 1.1)
    assert teacher.module.norm.num_batches_tracked.item() == 1
    student.norm(torch.tensor([[2.0], [4.0]]))  # running_mean 0.9 * 0.3 + 0.1 * 3 = 0.57
    teacher.update(student)
    assert teacher.module.norm.running_mean.item() == pytest.approx(0.9 * 0.03 + 0.1 * 0.57)
    assert teacher.module.norm.num_batches_tracked.item() == 2


def test_state_dict_round_trip_through_a_file_resumes_exactly(tmp_path: Path) -> None:
    student = Scalar(0.0)
    teacher = EMATeacher(student, decay=0.9)
    _set(student, 1.0)
    student.train()
    student.norm(torch.tensor([[2.0], [4.0]]))
    teacher.update(student)
    torch.save(teacher.state_dict(), tmp_path / "teacher.pth")

    resumed = EMATeacher(Scalar(5.0), decay=0.9)
    resumed.load_state_dict(torch.load(tmp_path / "teacher.pth"))
    assert resumed.num_updates == 1
    assert resumed.module.weight.item() == pytest.approx(0.1)
    _set(student, 2.0)
    teacher.update(student)
    resumed.update(student)
    assert resumed.module.weight.item() == teacher.module.weight.item()
    torch.testing.assert_close(resumed.module.state_dict(), teacher.module.state_dict(), rtol=0, atol=0)
    with pytest.raises(KeyError, match="num_updates"):
        resumed.load_state_dict({"shadow": teacher.state_dict()["shadow"]})


def test_ddp_style_wrapper_is_unwrapped() -> None:
    student = Scalar(0.0)
    teacher = EMATeacher(Wrapper(student), decay=0.9)
    assert [name for name, _ in teacher.module.named_parameters()] == ["weight", "norm.weight", "norm.bias"]
    _set(student, 1.0)
    teacher.update(Wrapper(student))
    teacher.update(student)
    assert teacher.module.weight.item() == pytest.approx(0.19)  # 0.9 * 0.1 + 0.1 * 1


def test_update_from_another_model_is_rejected() -> None:
    teacher = EMATeacher(Scalar(), decay=0.9)
    expected = r"missing in the student: \['norm.bias', 'norm.weight'\], unknown to the teacher: \['bias'\]"
    with pytest.raises(ValueError, match=expected):
        teacher.update(torch.nn.Linear(1, 1))


def test_bad_decay_and_device_move() -> None:
    with pytest.raises(ValueError, match="decay"):
        EMATeacher(Scalar(), decay=1.5)
    teacher = EMATeacher(Scalar())
    assert teacher.to("meta") is teacher
    assert teacher.module.weight.device.type == "meta"
