"""Runs to numbers, figures and verdicts: the package the notebooks and the report call.

Modules (import them directly; this package imports nothing heavy so the CLI stays fast):
``load`` (runs into pandas), ``hops`` (stamps to hops, hop counts), ``stats`` (percentiles,
bootstrap intervals), ``decompose`` (where the time goes), ``model`` (the hop model),
``compare`` (pairing cells), ``claims`` (the note's claims with verdicts), ``loadcurve``
(latency vs load, knees), ``figures`` (matplotlib), ``synth`` (synthetic runs), ``report``.
"""
