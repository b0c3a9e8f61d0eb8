"""Evaluation of the two severity CNNs: the paper's Table 2 and what a reviewer needs beyond it.

One concern per module; callers import each name from the module that defines it:

* ``readers``: predictions.csv / split.csv, checked; grouped-split checks;
* ``metrics``: scikit-learn metrics of one set of predictions, selecting a split's rows;
* ``intervals``: the participant bootstrap and exact binomial intervals where it collapses;
* ``fusion``: wrist-level probabilities and two-plane fusion;
* ``tables``: every metric with CIs, Table 2, paper vs reproduction, leakage, CV folds;
* ``csa``: the clinical CSA-threshold baseline;
* ``paired``: paired participant-bootstrap differences (CNN vs CSA, plane vs plane);
* ``meaning``: the plain-words "What this means" box;
* ``prose``: sentences and the summary built from the recorded numbers;
* ``plots``: Figure 4, the leakage figure and the Grad-CAM figure;
* ``stage``: stage 06 as the verbs notebook 06 calls, one per table or figure.

What this adds to the paper's evaluation: participant-bootstrap intervals, wrist-level results,
the leakage gap (frame split minus grouped split) and a clinical baseline.
"""

__all__ = ["csa", "fusion", "intervals", "meaning", "metrics", "paired", "plots", "prose", "readers", "stage", "tables"]
