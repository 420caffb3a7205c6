"""Stage 4, the evidence: runs of methods x seeds, their statistics, and the paper's claims judged by them.

- :mod:`~igkd_lib.evidence.experiments`: the runner (cached runs, the tidy table, ablation grids);
  :mod:`~igkd_lib.evidence.committed_runs`: the runs GPU windows committed under ``results/<profile>/``, by run key;
- :mod:`~igkd_lib.evidence.stats`: summaries, Welch intervals, Holm, power, the 2x2 interaction;
- :mod:`~igkd_lib.evidence.claims` / :mod:`~igkd_lib.evidence.claim_sources` /
  :mod:`~igkd_lib.evidence.study_claims`: the paper's claims and the studies' questions, with verdicts;
- :mod:`~igkd_lib.evidence.reference` / :mod:`~igkd_lib.evidence.official`: the paper's numbers, the
  committed results, and the authors' own ten-run accuracies and published students;
- :mod:`~igkd_lib.evidence.studies`, :mod:`~igkd_lib.evidence.corruptions`,
  :mod:`~igkd_lib.evidence.agreement`: the studies beyond the paper (compression, robustness, agreement), their
  numbers with torch and numpy only in :mod:`~igkd_lib.evidence.corrupted_images` and
  :mod:`~igkd_lib.evidence.map_agreement` (a GPU window computes them), and
  :mod:`~igkd_lib.evidence.committed_studies`: those of Table 1's paper-scale students, as the windows measured them;
- :mod:`~igkd_lib.evidence.robustness` / :mod:`~igkd_lib.evidence.robustness_tables`: the authors' published
  students under corruption, paired over images (``python -m igkd_lib official --robustness``);
  :mod:`~igkd_lib.evidence.committed_predictions`: that study's committed per-image predictions, read back;
- :mod:`~igkd_lib.evidence.run_rows`: the one schema a run row must meet (ingest and the claims).

It reads training and attribution; the chapters (:mod:`igkd_lib.book`) read it. Import the modules.
"""
MODULES = ("experiments", "committed_runs", "stats", "claims", "claim_sources", "study_claims", "reference", "official",
           "studies", "corruptions", "agreement", "robustness", "robustness_tables", "committed_predictions",
           "run_rows", "corrupted_images", "map_agreement", "committed_studies")
__all__ = ["MODULES"]
