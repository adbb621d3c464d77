"""The published results of the released models (:data:`lcnn.released.RELEASED`), as their authors give them, each
with where it was read. A figure not found in a publication is absent, never estimated.

- NII's comparative study: Table 1 of Wang & Yamagishi, Interspeech 2021 (arXiv 2103.11326), reproduced as
  ``misc/fig_eer_table.png`` of nii-yamagishilab/project-NN-Pytorch-scripts, which its ``project/03-asvspoof-mega``
  README shows: EER (%) and min t-DCF on the ASVspoof 2019 LA evaluation set of the six training runs of each
  system, **sorted by EER** (I to VI): which run folder (``01`` .. ``06``) gave which pair is not published.
- The ASVspoof 2021 LFCC-LCNN baselines (B03): the challenge's summary papers (Yamagishi et al., ASVspoof 2021
  workshop; Liu et al., IEEE/ACM TASLP 2023). The challenge repository's READMEs give no figure; the values here
  are those papers' as quoted by third-party result tables (read through a code search), not read in the papers.
- LightCNN: the "Performance" table (LFW, 6,000 pairs) of the README of AlfredXiangWu/LightCNN.
"""

from __future__ import annotations

__all__ = ["BASELINES", "LIGHTCNN", "LIGHTCNN_REFERENCE", "STUDY", "STUDY_REFERENCE"]

STUDY_REFERENCE = ("Wang & Yamagishi, Interspeech 2021 (arXiv 2103.11326), Table 1, as shown by the README of "
                   "project-NN-Pytorch-scripts/project/03-asvspoof-mega (misc/fig_eer_table.png)")  # fmt: skip

# VARIANT: the six runs' EERs (%) I..VI | their min t-DCFs, in the same (EER-sorted) order. The table's LFB / SPEC /
# LFCC rows are lfb / spec2 / lfcc; LCNN-trim-pad / -attention / -LSTM-sum are fixed / attention / lstmsum;
# AM-softmax / OC-softmax / Sigmoid / MSE for P2SGrad are am / oc / sig / p2s.
_TABLE_1 = """
lfb-lcnn-fixed-am        5.59 6.39 7.12 7.79 9.33 10.72 | 0.129 0.168 0.204 0.212 0.235 0.236
lfb-lcnn-fixed-oc        5.98 6.76 7.02 7.14 9.56 11.34 | 0.156 0.179 0.173 0.171 0.200 0.246
lfb-lcnn-fixed-sig       7.00 7.40 8.69 8.89 9.86 10.13 | 0.166 0.175 0.195 0.222 0.229 0.227
lfb-lcnn-fixed-p2s       6.81 7.25 8.10 8.28 8.41 10.21 | 0.171 0.212 0.200 0.190 0.217 0.215
lfb-lcnn-attention-am    4.26 4.32 4.69 5.23 8.55 14.86 | 0.118 0.117 0.093 0.101 0.203 0.331
lfb-lcnn-attention-oc    4.01 4.54 4.57 5.27 5.33 5.76  | 0.111 0.121 0.122 0.148 0.155 0.160
lfb-lcnn-attention-sig   3.34 5.07 5.70 5.91 5.93 5.93  | 0.064 0.087 0.126 0.088 0.108 0.092
lfb-lcnn-attention-p2s   3.99 4.87 5.75 5.85 6.20 7.36  | 0.089 0.110 0.124 0.119 0.123 0.131
lfb-lcnn-lstmsum-am      4.24 5.27 5.71 6.23 7.03 7.10  | 0.091 0.141 0.146 0.197 0.195 0.197
lfb-lcnn-lstmsum-oc      5.81 6.51 6.89 7.64 9.15 10.24 | 0.160 0.184 0.165 0.198 0.210 0.285
lfb-lcnn-lstmsum-sig     7.04 7.93 8.52 9.16 9.53 9.84  | 0.182 0.201 0.197 0.197 0.231 0.224
lfb-lcnn-lstmsum-p2s     5.06 5.17 5.69 5.75 6.17 6.50  | 0.148 0.147 0.156 0.163 0.172 0.183
spec2-lcnn-fixed-am      4.84 5.02 5.23 5.87 5.90 6.25  | 0.129 0.132 0.130 0.133 0.141 0.158
spec2-lcnn-fixed-oc      4.41 4.60 4.84 5.04 5.37 6.35  | 0.123 0.122 0.122 0.130 0.134 0.158
spec2-lcnn-fixed-sig     3.09 3.58 4.72 4.82 5.22 5.56  | 0.085 0.099 0.123 0.132 0.137 0.148
spec2-lcnn-fixed-p2s     2.94 3.22 3.59 3.73 4.49 4.74  | 0.085 0.088 0.095 0.106 0.126 0.127
spec2-lcnn-attention-am  4.02 4.08 4.99 5.22 5.57 8.20  | 0.119 0.117 0.131 0.153 0.139 0.156
spec2-lcnn-attention-oc  4.05 4.55 4.94 5.67 6.31 8.47  | 0.105 0.126 0.141 0.153 0.162 0.194
spec2-lcnn-attention-sig 3.92 4.04 4.42 4.91 4.95 6.62  | 0.109 0.109 0.115 0.140 0.141 0.173
spec2-lcnn-attention-p2s 4.70 5.03 5.60 5.88 6.35 6.50  | 0.135 0.125 0.143 0.129 0.153 0.183
spec2-lcnn-lstmsum-am    3.96 4.04 4.38 4.52 5.13 5.97  | 0.106 0.102 0.116 0.118 0.136 0.134
spec2-lcnn-lstmsum-oc    2.81 3.41 4.49 4.50 4.65 4.91  | 0.077 0.088 0.118 0.130 0.121 0.126
spec2-lcnn-lstmsum-sig   3.29 3.56 3.82 4.45 4.61 5.44  | 0.087 0.105 0.102 0.122 0.122 0.146
spec2-lcnn-lstmsum-p2s   2.37 2.91 3.00 3.94 4.26 4.37  | 0.060 0.077 0.079 0.097 0.097 0.117
lfcc-lcnn-fixed-am       3.04 3.52 4.73 4.89 5.85 7.06  | 0.068 0.081 0.083 0.092 0.090 0.118
lfcc-lcnn-fixed-oc       2.93 2.93 2.95 2.99 3.84 4.00  | 0.068 0.068 0.071 0.087 0.103 0.099
lfcc-lcnn-fixed-sig      2.54 2.73 2.77 2.91 3.08 3.47  | 0.069 0.069 0.071 0.074 0.074 0.099
lfcc-lcnn-fixed-p2s      2.31 2.46 2.64 2.65 3.09 3.11  | 0.056 0.061 0.068 0.065 0.074 0.075
lfcc-lcnn-attention-am   2.99 3.48 3.60 3.61 3.62 3.92  | 0.074 0.073 0.071 0.077 0.072 0.074
lfcc-lcnn-attention-oc   2.91 2.96 3.36 3.40 3.61 3.71  | 0.066 0.074 0.074 0.076 0.084 0.084
lfcc-lcnn-attention-sig  3.18 3.19 3.24 3.29 3.39 4.12  | 0.068 0.081 0.076 0.076 0.086 0.101
lfcc-lcnn-attention-p2s  2.72 2.81 2.91 3.03 3.22 3.30  | 0.079 0.080 0.080 0.079 0.082 0.091
lfcc-lcnn-lstmsum-am     2.46 3.02 3.23 3.34 3.41 3.86  | 0.057 0.068 0.078 0.077 0.079 0.068
lfcc-lcnn-lstmsum-oc     2.23 2.42 2.96 2.96 2.96 4.64  | 0.064 0.064 0.073 0.076 0.076 0.127
lfcc-lcnn-lstmsum-sig    2.67 2.94 3.20 3.40 3.45 3.53  | 0.064 0.063 0.066 0.083 0.073 0.075
lfcc-lcnn-lstmsum-p2s    1.92 2.09 2.43 2.50 2.62 3.10  | 0.052 0.058 0.067 0.055 0.067 0.075
"""


def _study() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    table = {}
    for line in _TABLE_1.strip().splitlines():
        variant, _, rest = line.partition(" ")
        eers, tdcfs = rest.split("|")
        table[variant] = (tuple(eers.split()), tuple(tdcfs.split()))
    return table


#: NII variant -> (the six runs' EERs in %, their min t-DCFs), as printed (strings: the published digits), in the
#: table's order: sorted by EER, not by run folder.
STUDY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = _study()

_SUMMARY = ("ASVspoof 2021 summary (Yamagishi et al., ASVspoof 2021 workshop, doi:10.21437/ASVSPOOF.2021-8; Liu "
            "et al., IEEE/ACM TASLP 2023, doi:10.1109/TASLP.2023.3285283), baseline B03")  # fmt: skip

#: Track -> (figures as (metric, published value), evaluated on, reference). DF is scored by EER alone.
BASELINES: dict[str, tuple[tuple[tuple[str, str], ...], str, str]] = {
    "LA": ((("EER", "9.26 %"), ("min t-DCF", "0.3445")), "ASVspoof 2021 LA eval",
           f"{_SUMMARY}; as quoted by a third-party results table (not read in the papers)"),
    "DF": ((("EER", "23.48 %"),), "ASVspoof 2021 DF eval (EER is the DF metric: no t-DCF)",
           f"{_SUMMARY}; as quoted by third-party code that recomputes it from the released score files"),
    "PA": ((("EER", "44.77 %"), ("min t-DCF", "0.9958")), "ASVspoof 2021 PA eval",
           "Liu et al., IEEE/ACM TASLP 2023 (doi:10.1109/TASLP.2023.3285283), Table XV, as quoted by third-party "
           "code that recomputes both from the released score files"),
}  # fmt: skip


LIGHTCNN_REFERENCE = "README of AlfredXiangWu/LightCNN, 'Performance' (LFW 6,000 pairs)"

#: Registered LightCNN architecture -> its LFW figures as (metric, published value).
LIGHTCNN: dict[str, tuple[tuple[str, str], ...]] = {
    "lightcnn9": (("100%-EER", "98.70 %"), ("TPR@FAR=1%", "98.47 %"), ("TPR@FAR=0.1%", "95.13 %"),
                  ("TPR@FAR=0", "89.53 %")),
    "lightcnn29": (("100%-EER", "99.40 %"), ("TPR@FAR=1%", "99.43 %"), ("TPR@FAR=0.1%", "98.67 %"),
                   ("TPR@FAR=0", "95.70 %")),
    "lightcnn29v2": (("100%-EER", "99.43 %"), ("TPR@FAR=1%", "99.53 %"), ("TPR@FAR=0.1%", "99.30 %"),
                     ("TPR@FAR=0", "96.77 %")),
    "lightcnn_v4": (("100%-EER", "99.67 %"), ("TPR@FAR=1%", "99.67 %"), ("TPR@FAR=0.1%", "99.57 %"),
                    ("TPR@FAR=0", "99.27 %")),
}  # fmt: skip
