"""softpl.bin.training_images: ESPnet's per-metric curves drawn once from a run's checkpoint are the images
ESPnet itself draws after the last epoch; a folder without a usable checkpoint gets an error naming it."""
from __future__ import annotations

import pytest
import torch
from espnet2.train.reporter import Reporter

from softpl.bin.training_images import draw_training_images, main


def reporter_of_two_epochs() -> Reporter:
    reporter = Reporter()
    for epoch in (1, 2):
        reporter.set_epoch(epoch)
        for key, loss in (("train", 3.0 / epoch), ("valid", 2.5 / epoch)):
            with reporter.observe(key) as sub:
                sub.register({"loss": torch.tensor(loss), "pl_blank_rate": 0.2 * epoch})
                sub.next()
    return reporter


def test_images_from_the_checkpoint_equal_espnets_after_its_last_epoch(tmp_path):
    reporter = reporter_of_two_epochs()
    torch.save({"model": {}, "reporter": reporter.state_dict(), "optimizers": [], "schedulers": []},
               tmp_path / "checkpoint.pth")
    reporter.matplotlib_plot(tmp_path / "espnet_images")  # what --use_matplotlib true leaves after epoch 2

    images = draw_training_images(tmp_path)

    assert [p.name for p in images] == ["loss.png", "pl_blank_rate.png"]
    assert all(p.parent == tmp_path / "images" for p in images)
    for image in images:
        assert image.read_bytes() == (tmp_path / "espnet_images" / image.name).read_bytes()


def test_a_folder_without_a_checkpoint_or_statistics_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit, match=f"{tmp_path}/checkpoint.pth not found"):
        main(["--exp_dir", str(tmp_path)])
    torch.save({"model": {}}, tmp_path / "checkpoint.pth")
    with pytest.raises(ValueError, match="no 'reporter' entry"):
        draw_training_images(tmp_path)
    torch.save({"reporter": Reporter().state_dict()}, tmp_path / "checkpoint.pth")
    with pytest.raises(ValueError, match="no epoch statistics"):
        draw_training_images(tmp_path)
    assert not (tmp_path / "images").exists()
