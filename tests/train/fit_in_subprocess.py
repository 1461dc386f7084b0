"""A fit in a process of its own, as in a notebook kernel, for the restart test.

Run from the repository root: ``python -m tests.train.fit_in_subprocess CHECKPOINT_DIR``.
With ``WORKBENCH_TEST_SLOW=1`` every reported step takes 50 ms on the driver, so that the test
can kill the process in the middle of the fit. Prints the outcome as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

import workbench as wb
from workbench.train import Callback

from . import faults


class Outcome(Callback):
    def on_train_begin(self, logs=None):
        self.start_step = self.estimator.step_

    def on_batch_end(self, step, logs=None):
        if os.environ.get("WORKBENCH_TEST_SLOW"):
            time.sleep(0.05)


def main(checkpoint_dir: str) -> None:
    wb.init(workers=2)
    outcome = Outcome()
    estimator = faults.estimator()
    history = estimator.fit(faults.rows_with_ids(), epochs=4, batch_size=faults.BATCH, snapshot_every=10,
                            checkpoint_dir=checkpoint_dir, resume=True, log_every=1, callbacks=[outcome],
                            verbose=False)
    print(json.dumps({"start_step": outcome.start_step, "step": estimator.step_, "epochs": list(history.index),
                      "rows_not_once": history["rows_not_once"].tolist()}))
    wb.stop()


if __name__ == "__main__":
    main(sys.argv[1])
