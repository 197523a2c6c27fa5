"""Reports: the papers' numbers as data (:mod:`~stipkit.reports.paper`), the ablation tables as
data (:mod:`~stipkit.reports.ablation_tables`), parameters and FLOPs
(:mod:`~stipkit.reports.complexity`), where the official code departs
(:mod:`~stipkit.reports.departures`), and Tables I-II read off the modules
(:mod:`~stipkit.reports.tables`)."""
