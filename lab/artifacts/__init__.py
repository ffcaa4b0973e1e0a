"""Project artifacts that channels hand to each other, stored server-side and disposed with the project.

* cohorts — PSI cohort-mode results: matched entity keys of a dataset version (``lab.artifacts.cohorts``);
* models — DP-trained or bureau-published models the HE channel scores with (``ModelRow``);
* statistics tables — DP-released tables the HE channel looks up (``StatTableRow``).

None of these is ever returned raw to an operator: cohorts are membership (never released),
models' weights stay server-side for HE scoring, tables are DP releases.
"""
