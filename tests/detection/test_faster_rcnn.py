import pytest
import torch
from torchvision.models import WeightsEnum
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
from torchvision.ops.misc import FrozenBatchNorm2d

from mltricks.data import make_scenes
from mltricks.detection import faster_rcnn
from mltricks.detection.faster_rcnn import BACKBONES

TINY = {
    "min_size": 48,
    "max_size": 48,
    "anchor_sizes": (8, 16, 32),
    "representation_size": 32,
    "box_batch_size_per_image": 16,
    "proposals": (50, 20),
}


def _batch(num_objects=(1, 2), seed=0):
    scenes = make_scenes(
        2,
        canvas_size=48,
        num_objects=num_objects,
        num_distractors=1,
        object_size=(10, 16),
        style="litter",
        random_state=seed,
    )
    return list(scenes.images), scenes.targets()


def test_builder_puts_a_predictor_for_classes_plus_background():
    model = faster_rcnn(4, **TINY)
    predictor = model.roi_heads.box_predictor
    assert predictor.cls_score.out_features == 5 and predictor.bbox_pred.out_features == 20
    assert model.transform.min_size == (48,)
    # random initialisation: every backbone layer trains, with ordinary BatchNorm
    assert all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())


def test_no_backbone_downloads_weights(monkeypatch):
    def download(*args, **kwargs):
        raise AssertionError("faster_rcnn tried to download weights")

    # every torchvision checkpoint is fetched through WeightsEnum.get_state_dict
    monkeypatch.setattr(WeightsEnum, "get_state_dict", download)
    for backbone in BACKBONES:
        sizes = (8, 16, 32, 64, 128) if backbone == "resnet50" else TINY["anchor_sizes"]
        model = faster_rcnn(2, backbone=backbone, **{**TINY, "anchor_sizes": sizes})
        assert model.roi_heads.box_predictor.cls_score.out_features == 3


@pytest.mark.parametrize("backbone", ["mobilenet_v3", "small"])
def test_one_training_step_on_a_tiny_scene_batch_and_eval_output(backbone):
    torch.manual_seed(0)
    model = faster_rcnn(4, backbone=backbone, **TINY)
    images, targets = _batch()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    sum(losses.values()).backward()
    optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and set(out[0]) == {"boxes", "labels", "scores"}
    assert ((out[0]["labels"] >= 1) & (out[0]["labels"] <= 4)).all()


@pytest.mark.slow
def test_loss_decreases_over_a_few_steps_on_one_batch():
    torch.manual_seed(0)
    model = faster_rcnn(4, **TINY)
    images, targets = _batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = sum(model(images, targets).values())
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-2:]) < 0.7 * sum(losses[:2]), losses


def test_label_zero_trap_gives_the_box_head_nothing_to_learn():
    # the earlier implementation labeled every object 0; torchvision samples such boxes as
    # background, so the box regression loss is exactly 0 and no object class is ever learned
    torch.manual_seed(0)
    model = faster_rcnn(4, **TINY)
    images, targets = _batch(num_objects=3)
    zero = [{**t, "labels": torch.zeros_like(t["labels"])} for t in targets]
    torch.manual_seed(1)
    trapped = model(images, zero)
    torch.manual_seed(1)
    correct = model(images, targets)
    assert trapped["loss_box_reg"].item() == 0.0
    assert correct["loss_box_reg"].item() > 0.0


def test_images_without_objects_train_as_negatives():
    torch.manual_seed(0)
    model = faster_rcnn(4, **TINY)
    images, targets = _batch(num_objects=0)
    assert all(len(t["boxes"]) == 0 for t in targets)
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box_reg"].item() == 0.0 and losses["loss_classifier"].item() > 0


@pytest.mark.slow
def test_local_torchvision_checkpoint_loads_and_gets_a_new_predictor(tmp_path):
    torch.manual_seed(0)
    reference = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    path = tmp_path / "coco.pth"
    torch.save(reference.state_dict(), path)
    model = faster_rcnn(4, weights=path, trainable_backbone_layers=3)
    state, saved = model.state_dict(), reference.state_dict()
    shared = [k for k in saved if "box_predictor" not in k]
    assert all(torch.equal(state[k], saved[k]) for k in shared if k in state)
    assert {k for k in saved if "box_predictor" not in k and "num_batches" not in k} <= set(state)
    assert model.roi_heads.box_predictor.cls_score.out_features == 5
    # as in torchvision's pretrained builders: frozen BatchNorm, early backbone stages frozen
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    body = model.backbone.body
    assert not any(p.requires_grad for p in body["0"].parameters())
    assert all(p.requires_grad for p in model.roi_heads.parameters())

    # a checkpoint fine-tuned for the same classes loads as it is, predictor included
    torch.save(model.state_dict(), tmp_path / "ours.pth")
    again = faster_rcnn(4, weights=tmp_path / "ours.pth")
    assert torch.equal(
        again.roi_heads.box_predictor.cls_score.weight,
        model.roi_heads.box_predictor.cls_score.weight,
    )
    with pytest.raises(ValueError, match="representation_size=64"):
        faster_rcnn(4, weights=path, representation_size=64)


def test_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        faster_rcnn(2, weights=tmp_path / "missing.pth")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a Faster R-CNN state dict"):
        faster_rcnn(2, weights=tmp_path / "other.pth")
    (tmp_path / "notes.txt").write_text("these are not weights\n")  # a text file as --model
    with pytest.raises(ValueError, match=r"Faster R-CNN weights file '.*notes\.txt'"):
        faster_rcnn(2, weights=tmp_path / "notes.txt")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, "num_classes"),
        ({"backbone": "vgg"}, "backbone must be one of 'mobilenet_v3', 'resnet50'"),
        ({"trainable_backbone_layers": 7}, "trainable_backbone_layers"),
        ({"backbone": "resnet50", "anchor_sizes": (8, 16)}, "exactly 5 sizes"),
        ({"anchor_sizes": ()}, "at least one size"),
        ({"min_size": 64, "max_size": 32}, "max_size"),
        ({"proposals": (10,)}, "proposals"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        faster_rcnn(**{"num_classes": 2, **kwargs})
