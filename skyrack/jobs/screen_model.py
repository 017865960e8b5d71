"""The cloud screen's model: a tiny CNN that estimates a tile's cloud fraction from its 8-bit RGB
quicklook, trained here on the real scenes, its discard threshold chosen on the validation split.

The net (three 3x3 convolutions, 16-16-32 channels, then the mean and the max of the last
feature map into one output) has about 7,500 parameters, 30 KB of float32: Phi-sat-1's
CloudScout network was held to 5 MB. It is trained to predict the tile's cloud fraction (binary
cross-entropy against the fraction by the quality band), on the training windows under the
eight rotations and flips, with Adam, for a fixed number of steps. Everything it draws (the
initial weights, the batches, the flips) comes from its own `torch.Generator`; torch's global
RNG and thread count are never touched, so a job that scores tiles leaves the trainer's state
as it was.

A tile is discarded when the estimated fraction is above the threshold. The threshold is the one
with the best validation accuracy among those that discard at most 1 % of the validation's
clear tiles (CloudScout's false-positive rate); the reference classifier, a brightness threshold
(`screen_tiles.brightness`), gets its threshold by the same rule on the same tiles.

The weights and their record (threshold, the figures, the data's sha256) are cached as
`<cache>/models/screen-cloudnet-v<N>.pt` / `.json`; reading verifies the weights' sha256 and
the imagery's, and trains afresh when either does not match.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from skyrack.jobs.screen_tiles import TILE, TileSet, brightness, split
from skyrack.sources.cache import cache_dir
from skyrack.sources.landsat import scenes
from skyrack.storage import atomic_write_bytes, sha256_file

VERSION = 2  # bump when the net, its training or its inputs change
SEED = 17
STEPS = 1500
BATCH = 128
LR = 3e-3
MAX_FALSE_DISCARD = 0.01


class CloudNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, 3, 16, 16) in [0, 1] -> logits (n,)
        f = self.features(x - 0.5)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled).squeeze(1)


def new_net(generator: torch.Generator) -> CloudNet:
    """A freshly initialised net whose weights come from `generator` alone."""
    with torch.device("meta"):  # built without drawing from torch's global RNG
        net = CloudNet()
    net = net.to_empty(device="cpu")
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(module.bias)
    return net


def as_input(images: np.ndarray) -> torch.Tensor:
    """(n, 16, 16, 3) uint8 -> (n, 3, 16, 16) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def predict(net: CloudNet, images: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Estimated cloud fraction of each tile."""
    net.eval()
    out = [torch.sigmoid(net(as_input(images[i : i + batch]))) for i in range(0, len(images), batch)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def train(data: TileSet, seed: int = SEED, steps: int = STEPS, progress=None) -> CloudNet:
    g = torch.Generator().manual_seed(seed)
    net = new_net(g)
    x, y = as_input(data.images), torch.from_numpy(data.cloud).float()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    for step in range(steps):
        idx = torch.randint(0, len(y), (BATCH,), generator=g)
        xb = x[idx]
        k = int(torch.randint(0, 8, (1,), generator=g))
        xb = torch.rot90(xb, k % 4, dims=(2, 3))
        if k >= 4:
            xb = xb.flip(3)
        loss = loss_fn(net(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step + 1) % 100 == 0:
            progress(f"training the cloud screen: step {step + 1}/{steps}, loss {loss.item():.4f}")
    net.eval()
    return net


def choose_threshold(scores: np.ndarray, cloudy: np.ndarray, max_false_discard: float = MAX_FALSE_DISCARD):
    """The discard threshold (discard when score > threshold) with the best accuracy among those
    whose false-discard rate on these tiles is at most `max_false_discard`; ties go to the higher.
    The highest score always qualifies: it discards nothing."""
    clear = ~cloudy
    best = None
    for t in np.unique(scores):
        discard = scores > t
        fdr = (discard & clear).sum() / max(clear.sum(), 1)
        if fdr <= max_false_discard:
            acc = (discard == cloudy).mean()
            if best is None or acc >= best[1]:
                best = (float(t), float(acc))
    return best[0]


def figures(scores: np.ndarray, threshold: float, cloudy: np.ndarray) -> dict:
    """Accuracy and false discards of `score > threshold` as the discard rule."""
    discard = scores > threshold
    clear = ~cloudy
    return {
        "tiles": int(len(scores)),
        "cloudy": int(cloudy.sum()),
        "clear": int(clear.sum()),
        "accuracy": float((discard == cloudy).mean()) if len(scores) else 0.0,
        "false_discards": int((discard & clear).sum()),
        "false_discard_rate": float((discard & clear).sum() / max(clear.sum(), 1)),
        "missed_cloudy": int((~discard & cloudy).sum()),
        "threshold": float(threshold),
    }


@dataclass
class Model:
    net: CloudNet
    threshold: float
    record: dict  # the cached JSON: thresholds, figures, sha256s

    @property
    def sha256(self) -> str:
        return self.record["sha256"]

    def cloud_fraction(self, images: np.ndarray) -> np.ndarray:
        return predict(self.net, images)


def _paths():
    folder = cache_dir("models")
    stem = f"screen-cloudnet-v{VERSION}"
    return folder / f"{stem}.pt", folder / f"{stem}.json"


def fit(progress=None) -> Model:
    """Train on the real scenes, choose both thresholds on validation, score the held-out test,
    and cache the result."""
    imagery = scenes(progress=progress)
    sets = split(imagery)
    started = time.perf_counter()
    net = train(sets["train"], progress=progress)
    train_s = time.perf_counter() - started
    val, test = sets["val"], sets["test"]
    threshold = choose_threshold(predict(net, val.images), val.cloudy)
    reference = choose_threshold(brightness(val.images), val.cloudy)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    weights, meta = _paths()
    atomic_write_bytes(weights, buffer.getvalue())
    record = {
        "version": VERSION,
        "sha256": sha256_file(weights),
        "imagery_sha256": imagery.content,
        "threshold": threshold,
        "reference_threshold": reference,
        "parameters": sum(p.numel() for p in net.parameters()),
        "weights_bytes": weights.stat().st_size,
        "train_windows": len(sets["train"]),
        "train_steps": STEPS,
        "train_s": round(train_s, 2),
        "seed": SEED,
    }
    atomic_write_bytes(meta, json.dumps(record, indent=1).encode())
    if progress:
        test_fig = figures(predict(net, test.images), threshold, test.cloudy)
        progress(
            f"cloud screen trained in {train_s:.1f} s: held-out accuracy {test_fig['accuracy']:.1%}, "
            f"false discards {test_fig['false_discard_rate']:.1%} of {test_fig['clear']} clear tiles"
        )
    return Model(net, threshold, record)


def load(progress=None) -> Model:
    """The cached model, verified; trained here first when absent, damaged or out of date."""
    weights, meta = _paths()
    try:
        record = json.loads(meta.read_text())
        if record.get("version") == VERSION and sha256_file(weights) == record["sha256"]:
            if record["imagery_sha256"] == scenes(progress=progress).content:
                with torch.device("meta"):  # no global RNG drawn for weights replaced at once
                    net = CloudNet()
                state = torch.load(io.BytesIO(weights.read_bytes()), weights_only=True)
                net.load_state_dict(state, assign=True)
                net.eval()
                return Model(net, float(record["threshold"]), record)
    except (OSError, ValueError, KeyError, RuntimeError):
        pass  # absent, damaged or stale: train below
    if progress:
        progress("no cached cloud-screen model: training one on the real scenes (about half a minute)")
    return fit(progress=progress)


def evaluate(model: Model, progress=None) -> dict:
    """Held-out figures of the model and of the brightness reference, from the same tiles."""
    sets = split(scenes(progress=progress))
    out = {"model": {}, "reference": {}, "tile_px": TILE, "record": model.record}
    for role in ("val", "test"):
        tiles = sets[role]
        scores = model.cloud_fraction(tiles.images)
        ref = brightness(tiles.images)
        out["model"][role] = figures(scores, model.threshold, tiles.cloudy)
        out["reference"][role] = figures(ref, model.record["reference_threshold"], tiles.cloudy)
        if role == "test":
            for scene in ("landsat8", "sentinel2"):
                m = tiles.scene == scene
                out["model"][f"test_{scene}"] = figures(scores[m], model.threshold, tiles.cloudy[m])
                out["reference"][f"test_{scene}"] = figures(
                    ref[m], model.record["reference_threshold"], tiles.cloudy[m]
                )
    return out
