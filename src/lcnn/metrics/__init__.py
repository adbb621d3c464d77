"""Metrics: spoofing countermeasures (DET, EER, t-DCF) and face verification (k-fold accuracy, ROC, TAR@FAR)."""

from lcnn.metrics.spoof import (
    ASVSPOOF_COSTS,
    CostModel,
    asv_error_rates,
    compute_det_curve,
    compute_eer,
    eer_table,
    format_table,
    min_tdcf,
    read_asv_scores,
    split_metrics,
    tdcf_curve,
)
from lcnn.metrics.verification import kfold_accuracy, pairwise_eer, roc_curve, tar_at_far, verification_eer

__all__ = [
    "ASVSPOOF_COSTS",
    "CostModel",
    "asv_error_rates",
    "compute_det_curve",
    "compute_eer",
    "eer_table",
    "format_table",
    "kfold_accuracy",
    "min_tdcf",
    "pairwise_eer",
    "read_asv_scores",
    "split_metrics",
    "roc_curve",
    "tar_at_far",
    "tdcf_curve",
    "verification_eer",
]
