"""Experiments: the study run of notebook 03 (:mod:`~stipkit.experiments.study`), the ablations of
both papers with their cache and verdicts (:mod:`~stipkit.experiments.ablation`), and the method
comparison (:mod:`~stipkit.experiments.compare`). Each run is training + scoring."""
