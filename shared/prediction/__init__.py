"""Online and batch prediction, the Open Inference Protocol, traffic splits, logs."""
