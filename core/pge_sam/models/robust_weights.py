"""Weights of RobustSAM models: the official ``robustsam_checkpoint_{b,l,h}.pth`` and our adapters.

The official files hold the whole model (SAM's encoders and decoder, whose
decoder weights may differ from vanilla SAM's, plus 89 added ``mask_decoder.``
keys), as a plain state dict whose keys may carry a ``module.`` prefix (saved
from a DDP wrapper). They load with ``torch.load(weights_only=True)``, the
added keys are renamed to our module names by :data:`OFFICIAL_RENAMES`, and
both parts load strictly: any missing, unexpected or mis-shaped key is an error.

The release publishes no checksums, so there is no ``fetch`` command for these
files; :func:`missing_message` says where to download them by hand and where
to put them. Our own trained modules are safetensors (``kind = "robust_adapter"``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError, MissingWeightsError, WeightsError
from . import weights as W

OFFICIAL_FILES = {"vit_b": "robustsam_checkpoint_b.pth", "vit_l": "robustsam_checkpoint_l.pth",
                  "vit_h": "robustsam_checkpoint_h.pth"}
OFFICIAL_URL = "https://huggingface.co/robustsam/robustsam/resolve/main/model_checkpoint/{}"

# Official name prefix (after "mask_decoder.") -> our name in ``RobustSamModel.robust``. Applied
# in order, first match wins; inside an AMFG branch the second table applies to the rest.
OFFICIAL_RENAMES = (
    ("custom_robust_token.", "tokens."),
    ("robust_mlp.", "hyper."),
    ("custom_token_block.mlp.", "token_mlp."),
    ("fourier_first_layer_features.", "early_branch."),
    ("fourier_last_layer_features.", "final_branch."),
    ("fourier_mask_features.", "mask_branch."),
)
_BRANCH_RENAMES = (
    ("dnc_block_combined.SEMBlock.maxpool_conv.0.selector.fc.0.", "select.squeeze."),
    ("dnc_block_combined.SEMBlock.maxpool_conv.0.selector.att_conv1.", "select.head_bn."),
    ("dnc_block_combined.SEMBlock.maxpool_conv.0.selector.att_conv2.", "select.head_in."),
    ("dnc_block_combined.SEMBlock.maxpool_conv.0.BN.", "select.bn."),
    ("dnc_block_combined.SEMBlock.maxpool_conv.0.conv1.", "select.conv_bn."),
    ("dnc_block_combined.SEMBlock.maxpool_conv.0.conv2.", "select.conv_in."),
    ("dnc_block_combined.channel_attention.excitation.", "attention."),
    ("fgm_block.conv_layer.", "fourier.conv."),
    ("conv_layer.", "fuse."),
)
_TAILS = {"early_branch": "upsample_layer.", "final_branch": "upsample_layer.", "mask_branch": "downsample_layer."}


def _rename(name: str, table) -> str | None:
    for old, new in table:
        if name.startswith(old):
            return new + name[len(old):]
    return None


def our_name(official: str) -> str | None:
    """Our ``robust.*`` key for an official ``mask_decoder.*`` key, or ``None`` for a vanilla SAM key."""
    if not official.startswith("mask_decoder."):
        return None
    rest = official[len("mask_decoder."):]
    top = _rename(rest, OFFICIAL_RENAMES)
    if top is None:
        return None
    branch, _, inner = top.partition(".")
    if branch not in _TAILS:
        return top
    renamed = _rename(inner, ((_TAILS[branch], "tail."), *_BRANCH_RENAMES))
    return None if renamed is None else f"{branch}.{renamed}"


def official_path(backbone: str, directory: Path | None = None) -> Path:
    """Where the official RobustSAM checkpoint of ``backbone`` is looked for (it may not exist)."""
    if backbone not in OFFICIAL_FILES:
        raise InputError(f"RobustSAM released checkpoints for {sorted(OFFICIAL_FILES)} only, not {backbone!r}; "
                         f"train RobustSAM modules for it with `pge-sam train robust --backbone {backbone}`")
    return Path(directory or W.cache_dir()) / OFFICIAL_FILES[backbone]


def missing_message(path: Path, backbone: str, official: bool = True) -> str:
    """What to do about a missing official file (``official``) or missing trained modules."""
    if official and backbone in OFFICIAL_FILES:
        name = OFFICIAL_FILES[backbone]
        return (f"RobustSAM weights {path} not found. Download {name} from {OFFICIAL_URL.format(name)} "
                f"(the release publishes no checksum) into {W.cache_dir()}, pass its path with --checkpoint, "
                f"or train the RobustSAM modules on an official SAM with `pge-sam train robust --backbone {backbone}`")
    return (f"RobustSAM modules {path} not found. Train them with `pge-sam train robust --backbone {backbone}` "
            f"and pass --adapter PATH, or use sam_{backbone} / pge_sam_{backbone}")


def split_official(state: dict) -> tuple[dict, dict]:
    """An official state dict -> (SAM state for ``model.sam``, added state for ``model.robust``)."""
    sam, robust = {}, {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        mine = our_name(key)
        if mine is not None:
            robust[mine] = value
        else:
            sam[key] = value
    return sam, robust


def is_official_robust(state: dict) -> bool:
    return any(k.removeprefix("module.").startswith("mask_decoder.custom_robust_token") for k in state)


def load_official(model, path: Path) -> None:
    """Load a whole official RobustSAM ``.pth`` into ``model`` (a ``RobustSamModel``) strictly."""
    import torch

    if not path.is_file():
        raise MissingWeightsError(missing_message(path, model.spec.name))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, zipfile errors ...
        raise WeightsError(f"{path} could not be read as a PyTorch checkpoint ({type(err).__name__}: {err}); "
                           "the file is corrupt or not a RobustSAM .pth file, download it again") from err
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not is_official_robust(state):
        raise WeightsError(f"{path} holds no RobustSAM decoder keys (mask_decoder.custom_robust_token...); "
                           f"for a plain SAM checkpoint use sam_{model.spec.name}, or pass RobustSAM modules "
                           "trained by `pge-sam train robust` with --adapter")
    sam_state, robust_state = split_official(state)
    W.load_state_strict(model.sam, sam_state, path, f"sam_{model.spec.name} (inside RobustSAM)")
    W.load_state_strict(model.robust, robust_state, path, f"robust_sam_{model.spec.name} decoder additions")
    model.weights_changed(str(path))


def to_official(model) -> dict:
    """The model's weights under the official key names (``mask_decoder.`` + the release's names), for tests
    and for exporting our trained modules to tools that read the release's format."""
    inverse = {}
    for key in model.robust.state_dict():
        for official in _official_candidates(key):
            if our_name(official) == key:
                inverse[key] = official
                break
        else:
            raise WeightsError(f"no official name for {key}")
    state = dict(model.sam.state_dict())
    state.update({inverse[k]: v for k, v in model.robust.state_dict().items()})
    return state


def _official_candidates(key: str):
    for old, new in OFFICIAL_RENAMES:
        if key.startswith(new):
            rest = key[len(new):]
            branch = new.rstrip(".")
            if branch in _TAILS:
                for inner_old, inner_new in ((_TAILS[branch], "tail."), *_BRANCH_RENAMES):
                    if rest.startswith(inner_new):
                        yield "mask_decoder." + old + inner_old + rest[len(inner_new):]
            else:
                yield "mask_decoder." + old + rest
