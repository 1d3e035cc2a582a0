"""Encoders: pretrained Lite0 recognises real photos, ResNets match torchvision, weights load safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from lightly_airflow.embedding import canonical_model_name, get_encoder
from lightly_airflow.embedding.encoders import ResNet, read_weights


def _batch(arrays: list[np.ndarray], size: int) -> torch.Tensor:
    images = [np.asarray(Image.fromarray(a).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)) for a in arrays]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def test_model_names_map_lightly_spellings() -> None:
    assert canonical_model_name("resnet-18") == "resnet18"
    assert canonical_model_name("ResNet50") == "resnet50"
    assert canonical_model_name("efficientnet_lite0") == "efficientnet-lite0"
    with pytest.raises(ValueError, match="resnet-152"):
        canonical_model_name("vit-b16")


def test_pretrained_lite0_recognises_a_cat_and_an_espresso() -> None:
    encoder = get_encoder("efficientnet-lite0", input_size=224)
    x = _batch([data.chelsea(), data.coffee()], 224).float() * encoder.scale + encoder.shift
    with torch.inference_mode():
        logits = encoder.backbone.net(x)
    top = logits.argmax(dim=1).tolist()
    assert 281 <= top[0] <= 285  # ImageNet's domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian)
    assert top[1] in (504, 967, 968)  # coffee mug, espresso, cup


def test_lite0_embeddings_are_unit_vectors_that_separate_photos() -> None:
    encoder = get_encoder()
    assert encoder.dim == 1280
    assert encoder.model_id.startswith("efficientnet-lite0@") and encoder.model_id.endswith("/in64/d1280")
    photos = [data.chelsea(), data.coffee(), data.astronaut()]
    flipped = [a[:, ::-1].copy() for a in photos]
    with torch.inference_mode():
        emb = encoder(_batch(photos + flipped, 64))
    assert emb.dtype == torch.float32 and emb.shape == (6, 1280)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)
    sim = (emb @ emb.T).numpy()
    for i in range(3):  # a mirrored photo is closer to itself than to any other photo
        others = [sim[i, j + 3] for j in range(3) if j != i]
        assert sim[i, i + 3] > max(others)


def test_model_id_changes_with_input_size_dim_and_weights(tmp_path: Path) -> None:
    base = get_encoder()
    assert get_encoder(input_size=96).model_id != base.model_id
    projected = get_encoder(dim=128)
    assert projected.dim == 128 and projected.model_id != base.model_id
    state = {k: v.clone() for k, v in base.backbone.state_dict().items()}
    state["_conv_stem.weight"] += 0.01
    path = tmp_path / "lite0-finetuned.pth"
    torch.save(state, path)
    tuned = get_encoder(weights_uri=str(path))
    assert tuned.model_id != base.model_id
    assert tuned.model_id.split("@")[1][:16] == read_weights(str(path))[1][:16]


def test_projection_is_deterministic_and_keeps_neighbourhoods() -> None:
    images = _batch([data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.camera(), data.coins()], 64)
    with torch.inference_mode():
        full = get_encoder()(images).numpy()
        small_a = get_encoder(dim=64)(images).numpy()
        small_b = get_encoder(dim=64)(images).numpy()
    np.testing.assert_array_equal(small_a, small_b)
    np.testing.assert_allclose(np.linalg.norm(small_a, axis=1), 1.0, atol=1e-5)
    iu = np.triu_indices(6, 1)
    d_full = (1 - full @ full.T)[iu]
    d_small = (1 - small_a @ small_a.T)[iu]
    assert np.corrcoef(d_full, d_small)[0, 1] > 0.8


@pytest.mark.parametrize(
    "arch,params",
    [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032), ("resnet101", 44_549_160),
     ("resnet152", 60_192_808)],
)
def test_resnets_have_torchvision_parameter_counts(arch: str, params: int) -> None:
    assert sum(p.numel() for p in ResNet(arch).parameters()) == params


def test_resnet_weights_load_from_checkpoint_variants(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = ResNet("resnet18").eval()
    plain = tmp_path / "plain.pth"
    torch.save(reference.state_dict(), plain)
    wrapped = tmp_path / "wrapped.ckpt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, wrapped)
    images = _batch([data.chelsea(), data.rocket()], 64)
    expected = torch.nn.functional.normalize(
        reference.features((images.float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                           / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)), dim=1)
    for path in (plain, wrapped):
        encoder = get_encoder("resnet-18", weights_uri=path.as_uri())
        assert encoder.dim == 512
        with torch.no_grad():
            np.testing.assert_allclose(encoder(images).numpy(), expected.detach().numpy(), atol=1e-5)


def test_resnet_without_weights_or_with_foreign_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights_uri"):
        get_encoder("resnet-50")
    path = tmp_path / "r18.pth"
    torch.save(ResNet("resnet18").state_dict(), path)
    with pytest.raises(ValueError, match="do not fit"):
        get_encoder("resnet-34", weights_uri=str(path))
    with pytest.raises(FileNotFoundError, match="weights_uri"):
        get_encoder("resnet-18", weights_uri=str(tmp_path / "nope.pth"))


class _Payload:
    """Unpickling this would create a marker file: weights_only must refuse it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (Path(self.marker),))


def test_weights_are_never_unpickled_as_arbitrary_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(str(marker))}, path)
    with pytest.raises(ValueError, match="weights_only"):
        get_encoder("resnet-18", weights_uri=str(path))
    assert not marker.exists()


@pytest.mark.parametrize("kwargs", [{"input_size": 8}, {"input_size": "64"}, {"dim": 4096}, {"dim": 0}])
def test_invalid_sizes_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        get_encoder(**kwargs)


def test_mixed_precision_path_stays_close_and_returns_float32_unit_vectors() -> None:
    # The GPU runs under autocast; the same code path under CPU bf16 autocast must stay close to float32.
    encoder = get_encoder(dim=256)
    images = _batch([data.chelsea(), data.coffee(), data.astronaut(), data.rocket()], 64)
    with torch.inference_mode():
        full = encoder(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = encoder(images)
    assert mixed.dtype == torch.float32
    np.testing.assert_allclose(mixed.norm(dim=1).numpy(), 1.0, atol=1e-5)
    assert (full * mixed).sum(dim=1).min().item() > 0.97


def test_frozen_encoder_equals_the_eager_one_on_real_photos() -> None:
    # The CPU runner freezes the encoder (one TorchScript graph, batch norms folded): the same float32 model.
    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.camera(), data.coins(),
              data.immunohistochemistry(), data.hubble_deep_field(), data.retina(), data.cat()]
    photos += [a[::-1].copy() for a in photos]
    for kwargs in ({}, {"dim": 128, "input_size": 96}):
        eager, frozen = get_encoder(**kwargs), get_encoder(**kwargs).freeze(batch_size=8)
        assert frozen.frozen and not eager.frozen and frozen.model_id == eager.model_id
        images = _batch(photos, eager.input_size)  # 20 images: a batch size other than the traced one
        with torch.inference_mode():
            a, b = eager(images), frozen(images)
        assert b.dtype == torch.float32 and b.shape == a.shape
        cosine = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1))
        assert cosine.min().item() >= 0.9999, kwargs
        assert (a - b).abs().max().item() < 1e-4
        with pytest.raises(ValueError, match="expects"):
            frozen(images[:, :, :32, :32])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # no bf16 graph: the eager pass
            mixed = frozen(images)
            traced = frozen.freeze(precision="bfloat16")(images)  # precision="bfloat16": its own traced graph
            eager_mixed = eager(images)
        assert (a * mixed).sum(dim=1).min().item() > 0.97 and (mixed - b).abs().max().item() > 1e-4
        assert (traced * eager_mixed).sum(dim=1).min().item() > 0.99 and (a * traced).sum(dim=1).min().item() > 0.97
