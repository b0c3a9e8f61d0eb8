"""Evaluation of the two severity CNNs: the paper's Table 2 and what a reviewer needs beyond it.

One concern per module, everything re-exported here so notebooks write ``ev.<name>``:

* ``readers``: predictions.csv / split.csv, checked; the data source in words; grouped-split checks;
* ``metrics``: scikit-learn metrics of one set of predictions, selecting a split's rows;
* ``intervals``: the participant bootstrap and exact binomial intervals where it collapses;
* ``fusion``: wrist-level probabilities and two-plane fusion;
* ``tables``: every metric with CIs, Table 2, paper vs reproduction, leakage, CV folds;
* ``csa``: the clinical CSA-threshold baseline;
* ``paired``: paired participant-bootstrap differences (CNN vs CSA, plane vs plane);
* ``meaning``: the plain-words "What this means" box;
* ``prose``: sentences and the summary built from the recorded numbers.

What this adds to the paper's evaluation: participant-bootstrap intervals, wrist-level results,
the leakage gap (frame split minus grouped split) and a clinical baseline.
"""

from ctslib.evaluate.csa import *  # noqa: F401,F403
from ctslib.evaluate.fusion import *  # noqa: F401,F403
from ctslib.evaluate.intervals import *  # noqa: F401,F403
from ctslib.evaluate.metrics import *  # noqa: F401,F403
from ctslib.evaluate.meaning import *  # noqa: F401,F403
from ctslib.evaluate.metrics import _CV_FOLD  # noqa: F401
from ctslib.evaluate.paired import *  # noqa: F401,F403
from ctslib.evaluate.prose import *  # noqa: F401,F403
from ctslib.evaluate.readers import *  # noqa: F401,F403
from ctslib.evaluate.tables import *  # noqa: F401,F403
from ctslib.common.handoff import PREDICTION_COLUMNS, PROB_COLUMNS  # noqa: F401
