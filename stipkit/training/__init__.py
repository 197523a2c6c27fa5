"""Training: the losses (Eq. 8-10), Alg. 1 and its loop (:mod:`~stipkit.training.train`), the one
checkpoint format (:mod:`~stipkit.training.checkpoint`) and the shipped weights
(:mod:`~stipkit.training.zoo`). Reads models, data and config; knows nothing of scoring."""
