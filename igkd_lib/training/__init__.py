"""Stage 2 of the method, training: the teacher, the knowledge-distillation loss and the student's trainers.

- :mod:`~igkd_lib.training.loop`: the epoch loop, evaluation, checkpoints, precision and compilation;
- :mod:`~igkd_lib.training.teacher` / :mod:`~igkd_lib.training.teacher_shipping`: the teacher in use
  (shipped, verified) and how the shipped weights were made;
- :mod:`~igkd_lib.training.distill`: the KD loss ``(1 - alpha) CE + alpha T^2 KL``;
- :mod:`~igkd_lib.training.student`: one student run (baseline, KD, IG, KD+IG);
- :mod:`~igkd_lib.training.wide` / :mod:`~igkd_lib.training.wide_model`: N runs trained as one network;
- :mod:`~igkd_lib.training.teacher_table` / :mod:`~igkd_lib.training.graph_step` /
  :mod:`~igkd_lib.training.masked_batchnorm`: the GPU engine, the teacher's logits of every view in one table
  and the whole step one CUDA graph (padded last batch, masked BatchNorm);
- :mod:`~igkd_lib.training.teacher_graph` / :mod:`~igkd_lib.training.cuda_graph`: the teacher's training with one
  graph a step (the loop's run), and the capture-and-replay both graph engines share;
- :mod:`~igkd_lib.training.batchnorm`, :mod:`~igkd_lib.training.faults`: BatchNorm recalibration, and the
  official code's faults as options.

It reads :mod:`igkd_lib.data`; the student reads the maps of :mod:`igkd_lib.attribution` when given them.
"""
from igkd_lib.config import METHODS
from igkd_lib.training.distill import kd_loss, soft_targets
from igkd_lib.training.loop import predict_logits
from igkd_lib.training.student import train_student
from igkd_lib.training.teacher import get_teacher

MODULES = ("loop", "teacher", "teacher_shipping", "distill", "student", "wide", "wide_model", "batchnorm", "faults",
           "teacher_table", "graph_step", "masked_batchnorm", "member_major", "cuda_graph", "teacher_graph")
__all__ = ["MODULES", "METHODS", "kd_loss", "soft_targets",
           "predict_logits", "train_student", "get_teacher"]
