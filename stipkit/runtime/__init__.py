"""The ground floor: where a run computes (:mod:`~stipkit.runtime.device`: devices, mixed
precision) and how files are written (:mod:`~stipkit.runtime.files`: atomic writes, caches).
Imports nothing else of stipkit."""
