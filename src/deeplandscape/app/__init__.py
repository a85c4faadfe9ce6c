"""The application layer: what runs experiments and writes what a person reads.

``runner`` (run directories, resumable units, locking), ``report`` (a run's report and the sections of the
full report), ``full_report`` (every experiment at one scale, the papers' claims decided), ``results_md``
(RESULTS.md from full reports), ``inspect`` (the landscape report of any model). The libraries below
(:mod:`deeplandscape.spinglass`, ``optim``, ``analysis``, ``experiments``) never import from here.
"""
