"""Every figure: clips and frames (:mod:`~stipkit.plots.viz_data`), training curves, strips and
the Fig. 5 explorer (:mod:`~stipkit.plots.viz`, :mod:`~stipkit.plots.analysis`), ablation results
(:mod:`~stipkit.plots.viz_ablation`), and the papers' diagrams drawn from the modules
(:mod:`~stipkit.plots.diagrams`, :mod:`~stipkit.plots.diagrams_strpm`)."""
