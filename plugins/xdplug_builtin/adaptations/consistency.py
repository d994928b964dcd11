"""``consistency``: keep the adapting model's rankings close to the pretrained model's.

After source pretraining, a frozen copy (the teacher) scores each target
batch; the loss adds KL(teacher || student) over the target items shared with
the source, where the teacher's knowledge is grounded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xdplug.api import Adaptation, Float


def consistency_kl(student_scores: torch.Tensor, teacher_scores: torch.Tensor, temperature: float) -> torch.Tensor:
    p = F.log_softmax(teacher_scores / temperature, dim=1)
    q = F.log_softmax(student_scores / temperature, dim=1)
    return F.kl_div(q, p, log_target=True, reduction="batchmean")


class Consistency(Adaptation):
    name = "consistency"
    description = "Pretrain on the source, then fine-tune with KL(teacher || student) on shared items"
    defaults = {"weight": Float(1.0, 0, 1e6), "temperature": Float(1.0, 0, 1000, low_open=True)}
    search_space = {"params.adaptation.weight": {"type": "loguniform", "low": 1.0e-2, "high": 10.0}}

    def fit(self, session):
        session.train(["source"], phase="source", validate_on="source")
        teacher = session.frozen_copy()
        model = session.model
        data = model.data
        shared = torch.as_tensor(data.shared_items[:, 0] if len(data.shared_items) else
                                 range(data.n_target_items), dtype=torch.long, device=model.id_known.device)
        weight, temperature = self.params["weight"], self.params["temperature"]

        def kl_loss(model, batch):
            users = batch["target"]["ids"]
            student = model.score_with_grad("target", users, batch["vectors"])[:, shared]
            with torch.no_grad():
                teacher_scores = teacher.score_users("target", users)[:, shared]
            return weight * consistency_kl(student, teacher_scores, temperature)

        kl_loss.full_vectors = True  # it scores every target item: the step encodes every catalog row
        session.train(["target"], phase="target", extra_losses=[kl_loss])
