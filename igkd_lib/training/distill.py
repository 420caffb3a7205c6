"""The knowledge-distillation loss: cross-entropy plus the teacher's softened logits (Hinton et al.).

``kd_loss = (1 - alpha) * CE(student, labels) + alpha * T^2 * KL(teacher_T || student_T)``, batch
mean, where ``x_T = softmax(x / T)``. The ``T^2`` keeps the soft term's gradients on the scale of the
hard term's. See chapter 4 ("Distillation").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from igkd_lib.validators import check_number

__all__ = ["soft_targets", "kd_loss"]


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softened probabilities ``softmax(logits / T)``: (N, classes) -> (N, classes), float32."""
    check_number("temperature", temperature, 0, low_open=True)
    return F.softmax(logits.float() / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, labels: torch.Tensor, *,
            temperature: float, alpha: float) -> torch.Tensor:
    """Scalar KD loss for ``student_logits`` (N, C), ``teacher_logits`` (N, C) and ``labels`` (N,).

    With ``alpha == 0`` this is plain cross-entropy and ``teacher_logits`` may be None.
    Computed in float32 (also under bf16 autocast).
    """
    check_number("temperature", temperature, 0, low_open=True)
    check_number("alpha", alpha, 0, 1)
    student_logits = student_logits.float()
    hard = F.cross_entropy(student_logits, labels)
    if alpha == 0:
        return hard
    if teacher_logits is None or teacher_logits.shape != student_logits.shape:
        raise ValueError("teacher_logits must have the student logits' shape "
                         f"{tuple(student_logits.shape)} when alpha > 0; got "
                         f"{None if teacher_logits is None else tuple(teacher_logits.shape)}")
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    soft = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return (1.0 - alpha) * hard + alpha * temperature ** 2 * soft

