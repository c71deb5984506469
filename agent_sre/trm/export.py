"""Save and load a trained model: safetensors weights, a JSON config and the vocabulary recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError
from .encode import EncoderConfig
from .model import TRM, TRMConfig

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
WEIGHTS, CONFIG, VOCABULARY = "model.safetensors", "config.json", "vocabulary.json"
PROTOTYPES = "prototypes.safetensors"  # a model that reads sentence embeddings: what it trained on


def save_model(
    directory: Path, model: TRM, encoder: EncoderConfig, info: dict[str, Any], prototypes: torch.Tensor | None = None
) -> None:
    """Write the three files (four with `prototypes`); `info` (metrics, training config, calibration)
    goes into config.json."""
    directory.mkdir(parents=True, exist_ok=True)
    if prototypes is not None:
        save_file({"prototypes": prototypes.to(torch.float16).contiguous()}, str(directory / PROTOTYPES))
    tensors = {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS))
    config = {"model": model.config.to_dict(), "parameters": model.parameter_count(), **info}
    (directory / CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    vocabulary = {
        "recipe": "crc32(piece) % (buckets - 1) + 1; pieces per agent_sre/trm/encode.py",
        **encoder.to_dict(),
    }
    (directory / VOCABULARY).write_text(json.dumps(vocabulary, indent=1) + "\n")


def load_model(directory: Path | None = None) -> tuple[TRM, EncoderConfig, dict[str, Any]]:
    """The model in `directory` (default: the one shipped in the package), in eval mode."""
    directory = Path(directory or SHIPPED_DIR)
    try:
        config = json.loads((directory / CONFIG).read_text())
        vocabulary = json.loads((directory / VOCABULARY).read_text())
        weights = load_file(str(directory / WEIGHTS))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no usable TRM model in {directory}: {exc}") from exc
    vocabulary.pop("recipe", None)
    vocabulary["functions"] = tuple(vocabulary["functions"])
    encoder = EncoderConfig(**vocabulary)
    model = TRM(TRMConfig(**{"mixer": "mlp", **config["model"]}))  # models from before `mixer` were all MLP
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ConfigError(f"the TRM weights in {directory} do not fit its config.json: {exc}") from exc
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, encoder, config


def load_prototypes(directory: Path | None = None) -> torch.Tensor | None:
    """(names, E) float32 unit vectors, or None for a model without them."""
    path = Path(directory or SHIPPED_DIR) / PROTOTYPES
    if not path.exists():
        return None
    try:
        return load_file(str(path))["prototypes"].float()
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"the TRM prototypes in {path} cannot be read: {exc}") from exc


def has_model(directory: Path) -> bool:
    return all((directory / name).is_file() for name in (WEIGHTS, CONFIG, VOCABULARY))


def ema_copy(model: TRM) -> TRM:
    copy = TRM(model.config)
    copy.load_state_dict(model.state_dict())
    return copy


@torch.no_grad()
def ema_update(ema: TRM, model: TRM, decay: float) -> None:
    for shadow, live in zip(ema.parameters(), model.parameters()):
        shadow.lerp_(live, 1.0 - decay)
