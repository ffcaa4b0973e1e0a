"""The three privacy channels, wired explicitly where one place must know all of them.

Each channel owns its parameter rules (:data:`lab.projects.access.ParamCheck`) and passes them to
:func:`lab.projects.access.authorize` itself; the project's "may I?" check answers for any channel,
so it looks them up here. Imported lazily: the channels import :mod:`lab.projects.access`.

>>> sorted(param_checks())
['dp', 'he', 'psi']
"""

from __future__ import annotations

from lab.projects.access import Channel, ParamCheck, no_channel_params


def param_checks() -> dict[Channel, ParamCheck]:
    """Each channel's own parameter rules, by channel name."""
    from he_compute.access import check_params as he_params
    from psi_service.access import check_params as psi_params

    return {"dp": no_channel_params, "psi": psi_params, "he": he_params}
