"""Side outputs shared by the operators and the job graph."""

from pyflink.common import Types
from pyflink.datastream import OutputTag

DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
DRIFT_EVENTS = OutputTag("drift-events", Types.STRING())
TRAINING_ROWS = OutputTag("training-rows", Types.PICKLED_BYTE_ARRAY())  # the trainer's sample (udfs/learning/row_sample.py)
