"""Project artifacts that channels hand to each other, stored server-side and disposed with the project.

* cohorts — PSI cohort-mode results: matched entity keys of a dataset version (``lab.artifacts.cohorts``);
* models — DP-trained or bureau-published models the HE channel scores with (``ModelRow``);
* statistics tables — DP-released tables the HE channel looks up (``StatTableRow``).

Cohorts are membership and never returned to an operator. Models and tables are *released*
material: what a project can score or look up it can extract (chosen one-hot lookups return every
cell; d + 1 logits give a linear model's weights), so each is DP-released (ε charged at release)
or published by the bureau; :mod:`lab.artifacts.release` is the one place that decides which
operator sees their values.
"""
