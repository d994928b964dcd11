"""Bridge adaptations: map a user's source representation to their target one (users in both domains).

``emcdr`` (Man et al., IJCAI 2017): pretrain on the source, train on the
target, then learn an MLP from the user's source vector to their target vector
over the users present in both domains (MSE, as in the paper, or the target
ranking loss). ``ptupcdr`` (Zhu et al., WSDM 2022): a meta network reads the
user's source history (attention over its items: the characteristic encoder)
and generates a personal linear bridge ``W_u`` (d x d); the mapped vector is
``s_u W_u``, trained task-oriented on the target ranking loss.

Both work on user vectors, so any encoder and fusion can carry them. The
bridge is a model part (``model_parts``): built with the model, stored in its
weights. A target user's vector becomes ``u + a_u (mapped_u - u)`` with
``a_u = blend`` (``1`` for users with fewer than ``cold_below`` target training
items), and only for users present in both domains with a source history; every
other user keeps ``u``. Bridge phases train on target training interactions
only and validate on the target's validation split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xdplug.api import Adaptation, Choice, Float, Int


class UserBridge(nn.Module):
    """Applies a mapping to the target user vectors of users present in both domains."""

    def __init__(self, blend: float, cold_below: int):
        super().__init__()
        self.blend = blend
        self.cold_below = cold_below
        self.active = True  # off while the schedule trains the two domains' models
        self.last: dict = {}

    def mapped(self, model, vectors: torch.Tensor, side: dict) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, model, u: torch.Tensor, vectors: torch.Tensor, side: dict) -> torch.Tensor:
        if not self.active:
            return u
        m = self.mapped(model, vectors, side)
        has = side["has"]
        self.last = {"base": u, "mapped": m, "has": has}
        a = torch.full((len(u),), float(self.blend), device=u.device, dtype=u.dtype)
        a = torch.where(side["target_counts"] < self.cold_below, torch.ones_like(a), a)
        a = a * has.to(u.dtype)
        return u + a.unsqueeze(1) * (m - u)


class MLPBridge(UserBridge):
    """EMCDR's mapping: an MLP from the source user vector to the target one."""

    def __init__(self, dim: int, hidden: int, blend: float, cold_below: int):
        super().__init__(blend, cold_below)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def mapped(self, model, vectors, side):
        return self.mlp(model.source_user_vectors(side, vectors))


class PersonalBridge(UserBridge):
    """PTUPCDR's meta network: source-history characteristics -> a personal d x d bridge."""

    def __init__(self, dim: int, meta_dim: int, blend: float, cold_below: int):
        super().__init__(blend, cold_below)
        self.dim = dim
        self.event_k = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1, bias=False))
        self.decoder = nn.Sequential(nn.Linear(dim, meta_dim), nn.ReLU(), nn.Linear(meta_dim, dim * dim))
        # start near the identity bridge: mapped = the source vector
        nn.init.normal_(self.decoder[2].weight, std=1e-3)
        with torch.no_grad():
            self.decoder[2].bias.copy_(torch.eye(dim).flatten())

    def characteristics(self, vectors, side, n: int) -> torch.Tensor:
        items, rows = side["items"], side["rows"]
        item_vecs = vectors[items]
        out = torch.zeros(n, self.dim, device=vectors.device, dtype=vectors.dtype)
        if len(items) == 0:
            return out
        logits = self.event_k(item_vecs).squeeze(-1)
        weights = torch.exp(logits - logits.max())
        denom = torch.zeros(n, device=vectors.device, dtype=weights.dtype).index_add_(0, rows, weights)
        weights = weights / denom[rows].clamp_min(1e-12)
        return out.index_add_(0, rows, item_vecs * weights.unsqueeze(-1))

    def mapped(self, model, vectors, side):
        s = model.source_user_vectors(side, vectors)
        bridge = self.decoder(self.characteristics(vectors, side, len(s))).view(-1, self.dim, self.dim)
        return torch.bmm(s.unsqueeze(1), bridge).squeeze(1)


def bridge_parameters(model, tune: str) -> list[torch.nn.Parameter]:
    return list(model.parameters()) if tune == "all" else list(model.user_bridge.parameters())


def pretrain_both(session) -> None:
    """The bridge's two domain models: source pretraining, then target training, bridge off."""
    bridge = session.model.user_bridge
    bridge.active = False
    session.train(["source"], phase="source", validate_on="source")
    session.train(["target"], phase="target")
    bridge.active = True


_COMMON = {
    "blend": Float(0.5, 0, 1, help="weight of the mapped vector for users in both domains"),
    "cold_below": Int(0, 0, 1_000_000, help="users with fewer target training items take the mapped vector alone"),
    "tune": Choice("bridge", ["bridge", "all"], help="what the bridge phase trains"),
    "bridge_learning_rate": Float(0.0, 0, 10, help="0: the phase's own learning rate"),
}
_COMMON_SPACE = {
    "params.adaptation.blend": {"type": "uniform", "low": 0.0, "high": 1.0},
    "params.adaptation.bridge_learning_rate": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
}


class EMCDR(Adaptation):
    name = "emcdr"
    description = ("EMCDR: pretrain on the source, train on the target, then map source user vectors to "
                   "target ones with an MLP over users present in both domains")
    defaults = {**_COMMON, "hidden": Int(128, 1, 65536), "objective": Choice("mse", ["mse", "ranking"])}
    search_space = {**_COMMON_SPACE, "params.adaptation.hidden": {"type": "categorical", "choices": [64, 128, 256]},
                    "params.adaptation.objective": {"type": "categorical", "choices": ["mse", "ranking"]}}

    def model_parts(self, model):
        p = self.params
        return {"user_bridge": MLPBridge(model.options["dim"], p["hidden"], p["blend"], p["cold_below"])}

    def fit(self, session):
        pretrain_both(session)
        bridge = session.model.user_bridge
        p = self.params
        if p["objective"] == "mse":
            def mapping_loss(model, batch):
                last = bridge.last
                has = last.get("has")
                if has is None or not bool(has.any()):
                    return torch.zeros((), device=batch["vectors"].device)
                return F.mse_loss(last["mapped"][has], last["base"][has].detach())
            extra, weights = [mapping_loss], {"target": 0.0}
        else:
            extra, weights = [], None
        session.train(["target"], phase="bridge", parameters=bridge_parameters(session.model, p["tune"]),
                      extra_losses=extra, weights=weights, learning_rate=p["bridge_learning_rate"] or None)


class PTUPCDR(Adaptation):
    name = "ptupcdr"
    description = ("PTUPCDR: a meta network turns the user's source-history characteristics into a "
                   "personal linear bridge from source to target user vectors (users in both domains)")
    defaults = {**_COMMON, "meta_dim": Int(50, 1, 65536)}
    search_space = {**_COMMON_SPACE, "params.adaptation.meta_dim": {"type": "categorical", "choices": [16, 50, 128]}}

    def model_parts(self, model):
        p = self.params
        return {"user_bridge": PersonalBridge(model.options["dim"], p["meta_dim"], p["blend"], p["cold_below"])}

    def fit(self, session):
        pretrain_both(session)
        p = self.params
        session.train(["target"], phase="bridge", parameters=bridge_parameters(session.model, p["tune"]),
                      learning_rate=p["bridge_learning_rate"] or None)
