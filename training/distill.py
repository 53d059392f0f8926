"""Knowledge distillation for the fine-tune: the net being trained is also pulled toward a frozen teacher.

Five fine-tunes on plates_ro_dashcam and synthetic plates each learnt the ro and turned plates and forgot
part of the US and mixed ones (training/README.md). The teacher here is the net that ships: on every
training image, each anchor's plate score and box bins of the student are pulled toward the teacher's,
so that what the new data does not teach stays as the teacher had it.

- score term: binary cross-entropy of the student's logit against the teacher's probability, summed over
  anchors and divided by the sum of the teacher's probabilities (as ultralytics divides its class loss by
  the sum of the target scores);
- box term: the KL divergence of the student's 16-bin distributions of each box side from the teacher's,
  weighted by the teacher's probability, with the same divisor.

Both are added to the class part of ultralytics' loss, times ``weight``, only while training (not in
validation). ``install`` patches ultralytics' ``v8DetectionLoss.loss``; the teacher runs in eval mode
without gradients on the same batch.
"""

from __future__ import annotations

from typing import Any


def install(teacher_path: str, weight: float) -> None:
    import torch
    import torch.nn.functional as F
    from ultralytics import YOLO
    from ultralytics.utils import loss as losses

    teacher = YOLO(teacher_path).model.float().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    original = losses.v8DetectionLoss.loss

    def terms(student: dict[str, Any], taught: dict[str, Any]) -> Any:
        s_scores, t_scores = student["scores"], taught["scores"].to(student["scores"].dtype)
        t_prob = t_scores.sigmoid()
        norm = t_prob.sum().clamp(min=1.0)
        score = F.binary_cross_entropy_with_logits(s_scores, t_prob, reduction="sum") / norm
        b, _, n = student["boxes"].shape
        s_bins = student["boxes"].view(b, 4, 16, n).log_softmax(2)
        t_bins = taught["boxes"].view(b, 4, 16, n).log_softmax(2)
        kl = (t_bins.exp() * (t_bins - s_bins)).sum(2).mean(1)  # (b, n)
        box = (kl * t_prob[:, 0]).sum() / norm
        return score + box

    def loss(self: Any, preds: dict[str, Any], batch: dict[str, Any]) -> Any:
        total, items = original(self, preds, batch)
        if not torch.is_grad_enabled():
            return total, items
        with torch.no_grad():
            taught = teacher(batch["img"])[1]
        kd = terms(preds, taught) * weight * preds["scores"].shape[0]
        return total + torch.stack([kd * 0, kd, kd * 0]), items

    losses.v8DetectionLoss.loss = loss
