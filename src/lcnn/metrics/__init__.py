"""Metrics: spoofing countermeasures (DET, EER, t-DCF; ASVspoof 5 DCF, Cllr, a-DCF, t-EER), score calibration and
fusion, and face verification (k-fold accuracy, ROC, TAR@FAR)."""

from lcnn.metrics.calibration import Calibration, Fusion, effective_prior, fit_calibration, fit_fusion
from lcnn.metrics.dcf import act_dcf, cllr, min_cllr, min_dcf, pav_llrs
from lcnn.metrics.sasv import TRIAL_KINDS, a_dcf, t_eer
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
    "Calibration",
    "CostModel",
    "Fusion",
    "TRIAL_KINDS",
    "a_dcf",
    "act_dcf",
    "asv_error_rates",
    "cllr",
    "compute_det_curve",
    "compute_eer",
    "eer_table",
    "effective_prior",
    "fit_calibration",
    "fit_fusion",
    "format_table",
    "kfold_accuracy",
    "min_cllr",
    "min_dcf",
    "min_tdcf",
    "pairwise_eer",
    "pav_llrs",
    "read_asv_scores",
    "roc_curve",
    "split_metrics",
    "t_eer",
    "tar_at_far",
    "tdcf_curve",
    "verification_eer",
]
