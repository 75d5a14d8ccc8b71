"""``nf-plugins validate``: top-1/top-5 equal a hand count on a generated ImageFolder, labels never guessed.

The model under test predicts by grey level: logits are minus the squared distance between the mean of
its (normalized) input and one prototype grey per class, so the ranking of the classes for an image
is known from its grey alone. Images carry a centre of one grey and a border of another: only the
model's own eval transform (crop_pct 0.5 at 32 px, mean/std 0.5/0.25) shows the centre to the model
at the right scale, so a wrong crop or a missing normalization changes the counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.models import _registry
from torch import nn

from nf_plugins import evaluate as ev
from nf_plugins.hub.validate_record import RECORD_FORMAT, card_results, file_sha256

NAME = "nfp_test_grey_net"
GREYS = (0, 20, 50, 90, 140, 200, 235, 255)  # class k's prototype grey; distances from any grey differ
MEAN, STD = 0.5, 0.25
# (label, centre grey class, border grey class) of each image; the centre is what the model must see
IMAGES = [
    (0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3), (5, 5, 5),  # right
    (4, 0, 0),  # label 4 is 5th nearest to grey 0: top-5 only (an off-by-one top-4 misses it)
    (5, 0, 0),  # 6th nearest: neither (a top-6 would count it)
    (3, 7, 7),  # 5th nearest to grey 7: top-5 only
    (2, 7, 7),  # 6th: neither
    (6, 4, 4),  # 5th nearest to grey 4: top-5 only
    (1, 2, 2),  # 2nd nearest: top-5 only
    (7, 0, 7), (6, 1, 6),  # centre far from the label, border the label's: neither, if cropped
    (0, 0, 7),  # centre right, border far: right, if cropped
]  # fmt: skip
HAND_TOP1, HAND_TOP5 = 6, 10  # counted by hand from the comments above


class GreyLevelNet(nn.Module):
    """Logit k = -(mean of the input - prototype k)^2."""

    def __init__(self, num_classes: int = len(GREYS)) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.prototypes = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x.mean(dim=(1, 2, 3))[:, None] - self.prototypes) ** 2)


def _grey_net(pretrained: bool = False, num_classes: int = len(GREYS), **kwargs) -> GreyLevelNet:
    model = GreyLevelNet(num_classes)
    model.pretrained_cfg = dict(
        architecture=NAME,
        input_size=(3, 32, 32),
        crop_pct=0.5,
        interpolation="bilinear",
        mean=(MEAN,) * 3,
        std=(STD,) * 3,
        num_classes=num_classes,
    )
    return model


@pytest.fixture
def grey_checkpoint(tmp_path, monkeypatch) -> Path:
    """Register the grey net into timm (undone after the test) and save its hand-set prototypes."""
    monkeypatch.setitem(_registry._model_entrypoints, NAME, _grey_net)
    protos = torch.tensor([(g / 255 - MEAN) / STD for g in GREYS], dtype=torch.float32)
    path = tmp_path / "grey.safetensors"
    save_file({"prototypes": protos}, str(path))
    return path


def _image(path: Path, centre: int, border: int) -> None:
    a = np.full((64, 64, 3), GREYS[border], np.uint8)
    a[16:48, 16:48] = GREYS[centre]
    Image.fromarray(a).save(path)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "val"
    for k in range(len(GREYS)):
        (root / f"class_{k}").mkdir(parents=True)
    for i, (label, centre, border) in enumerate(IMAGES):
        _image(root / f"class_{label}" / f"img{i}.png", centre, border)
    return root


def _hand_count() -> tuple[int, int]:
    """Independent count: rank of the label among the classes by |grey difference| to the centre grey."""
    greys = np.array(GREYS)
    top1 = top5 = 0
    for label, centre, _ in IMAGES:
        order = np.argsort(np.abs(greys - greys[centre]), kind="stable")
        top1 += int(order[0] == label)
        top5 += int(label in order[:5])
    return top1, top5


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ev.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_top1_top5_equal_the_hand_count(grey_checkpoint, folder):
    assert _hand_count() == (HAND_TOP1, HAND_TOP5)
    model, _ = ev.load_model(NAME, checkpoint=grey_checkpoint)
    result = ev.evaluate(model, folder, batch_size=4, workers=1, progress=False)  # a DataLoader worker
    assert (result["top1_correct"], result["top5_correct"], result["n_images"]) == (6, 10, len(IMAGES))
    assert result["top1"] == pytest.approx(100 * 6 / 14) and result["top5"] == pytest.approx(100 * 10 / 14)
    assert result["class_index"] == "folder order"
    cfg = result["data_config"]
    assert (cfg["input_size"], cfg["crop_pct"], cfg["mean"]) == ([3, 32, 32], 0.5, [MEAN] * 3)


def test_cli_record_names_model_weights_data_and_versions(grey_checkpoint, folder, tmp_path, capsys):
    out = tmp_path / "res" / "val.json"
    argv = [NAME, "--data-dir", str(folder.parent), "--split", "val", "--checkpoint", str(grey_checkpoint)]
    ev.run(_args(*argv, "--workers", "0", "--output", str(out)))
    record = json.loads(out.read_text())
    assert record["format"] == RECORD_FORMAT and record["model"] == NAME and record["architecture"] == NAME
    assert (record["top1_correct"], record["top5_correct"], record["n_images"]) == (6, 10, 14)
    assert record["checkpoint_sha256"] == file_sha256(grey_checkpoint)
    assert record["split_dir"] == str(folder.resolve()) and record["date"][:2] == "20"
    assert record["versions"]["timm"] == __import__("timm").__version__
    printed = capsys.readouterr()
    assert "top-1 42.86  top-5 71.43  on 14 images" in printed.out
    assert "validate: 14/14 images" in printed.err  # not a terminal: progress as log lines


def test_our_models_are_scored_at_their_test_size_and_crop():
    """Appendix D: NF-RegNet-B0 trains at 192 px and tests at 224 px, cropped from 256 (224 + 32)."""
    import timm

    cfg = ev.eval_data_config(timm.create_model("nf_regnet_b0", pretrained=False))
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == pytest.approx(224 / 256)


def test_imagenet_synset_folders_score_on_their_imagenet_index(tmp_path):
    # a 3-folder subset of ImageNet val: tench is class 0, goldfish 1, toilet tissue 999, whatever the
    # position of the folder among the three
    for synset in ("n01440764", "n01443537", "n15075141"):
        (tmp_path / synset).mkdir()
        _image(tmp_path / synset / "a.png", 0, 0)
    names = list(__import__("timm").data.ImageNetInfo("imagenet-1k").label_names())
    mapping, how = ev.class_index_map(tmp_path, 1000, label_names=names)
    assert mapping == {"n01440764": 0, "n01443537": 1, "n15075141": 999}
    assert how.startswith("ImageNet synsets")


def test_class_map_file_sets_the_indices(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        _image(tmp_path / name / "a.png", 0, 0)
    cmap = tmp_path.parent / f"{tmp_path.name}_map.txt"
    cmap.write_text("dog\nbird\ncat\n")
    assert ev.class_index_map(tmp_path, 3, class_map=cmap)[0] == {"cat": 2, "dog": 0}
    with pytest.raises(ValueError, match="gives 'cat' class 2, but the model has 2 outputs"):
        ev.class_index_map(tmp_path, 2, class_map=cmap)
    cmap.write_text("dog\n")
    with pytest.raises(ValueError, match=r"folders \['cat'\] are not in --class-map"):
        ev.class_index_map(tmp_path, 3, class_map=cmap)


@pytest.mark.parametrize(
    "folders, num_classes, message",
    [
        (("a", "b", "c"), 8, "3 class folders but the model has 8 outputs"),
        (("c2", "c10"), 2, "differs between timm's natural sort"),
    ],
)
def test_labels_that_cannot_be_known_are_refused(tmp_path, folders, num_classes, message):
    for name in folders:
        (tmp_path / name).mkdir()
        _image(tmp_path / name / "a.png", 0, 0)
    with pytest.raises(ValueError, match=message):
        ev.class_index_map(tmp_path, num_classes)


def test_bad_input_is_refused_with_what_to_do(grey_checkpoint, folder, tmp_path):
    ck = ["--checkpoint", str(grey_checkpoint)]
    with pytest.raises(FileNotFoundError, match="--data-dir .* does not exist"):
        ev.run(_args(NAME, "--data-dir", str(tmp_path / "nope"), *ck))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        ev.run(_args(NAME, "--data-dir", str(tmp_path / "empty"), *ck))
    with pytest.raises(ValueError, match="dataset root.*--split val"):
        ev.run(_args(NAME, "--data-dir", str(folder.parent), *ck))
    with pytest.raises(ValueError, match="unknown model 'nf_resnet5'; did you mean .*nf_resnet50"):
        ev.run(_args("nf_resnet5", "--data-dir", str(folder)))
    with pytest.raises(ValueError, match="8 class folders but the model has 1000 outputs"):
        ev.run(_args("resnet18", "--data-dir", str(folder), "--checkpoint", str(_resnet18_sd(tmp_path))))


def _resnet18_sd(tmp_path: Path) -> Path:
    import timm

    path = tmp_path / "r18.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), str(path))
    return path


def test_export_hub_card_takes_its_results_from_the_validate_json(tmp_path):
    """The card shows the validate numbers for the weights they scored, and refuses another export's."""
    from nf_plugins.cli import call

    data = tmp_path / "data"
    for synset in ("n01440764", "n01443537"):
        (data / synset).mkdir(parents=True)
        _image(data / synset / "a.png", 0, 0)
    torch.manual_seed(0)
    a, b, v = tmp_path / "a", tmp_path / "b", tmp_path / "v.json"
    for out in (a, b):  # timm's tiny test_resnet, two random inits
        call("export-hub", ["test_resnet", "--out", str(out), "--no-macs"])
    record = ev.run(_args(f"local-dir:{a}", "--data-dir", str(data), "--workers", "0", "--output", str(v)))
    assert record["checkpoint_sha256"] == file_sha256(a / "model.safetensors")
    assert record["class_index"] == "ImageNet synsets (1000 classes)"
    call(
        "export-hub",
        [f"local-dir:{a}", "--out", str(tmp_path / "card"), "--no-macs", "--validate-json", str(v)],
    )
    card = (tmp_path / "card" / "README.md").read_text()
    assert f"| ImageNet top-1 (%) | {round(record['top1'], 2):g} |" in card
    assert f"| ImageNet top-5 (%) | {round(record['top5'], 2):g} |" in card
    assert "| images scored | 2 |" in card and "| eval input | 160 px, crop_pct 0.95, bilinear |" in card
    with pytest.raises(ValueError, match="SHA-256 differs"):
        call(
            "export-hub",
            [f"local-dir:{b}", "--out", str(tmp_path / "c2"), "--no-macs", "--validate-json", str(v)],
        )
    assert not (tmp_path / "c2").exists()


def test_card_results_refuse_another_architecture_or_other_weights_of_the_checkpoint(grey_checkpoint):
    record = {"architecture": NAME, "checkpoint_sha256": file_sha256(grey_checkpoint), "weights": "ema"}
    with pytest.raises(ValueError, match="scored 'nfp_test_grey_net', not 'nf_regnet_b0'"):
        card_results(record, architecture="nf_regnet_b0", checkpoint=grey_checkpoint, weights="ema")
    with pytest.raises(
        ValueError, match="scored the 'ema' weights of the checkpoint, the export takes 'model'"
    ):
        card_results(record, architecture=NAME, checkpoint=grey_checkpoint, weights="model")


def test_nan_logits_give_an_error_not_an_accuracy(grey_checkpoint, folder):
    model, _ = ev.load_model(NAME, checkpoint=grey_checkpoint)
    with torch.no_grad():
        model.prototypes[3] = float("nan")
    with pytest.raises(ValueError, match="NaN/inf logits; no accuracy is reported"):
        ev.evaluate(model, folder, workers=0, progress=False)
