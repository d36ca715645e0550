"""The one access decision builds each condition once per kind of caller and reuses it.

Building a partner's condition costs more than running it (``consent/decision.py``); a
condition rebuilt on every request would not change any answer, only the cost, so the
reuse is pinned down here (a mutation run found nothing else would notice it gone).
"""

from __future__ import annotations

from vault.consent.access import AccessContext, Permissions
from vault.consent.decision import visible
from vault.fhir.repository.base import ROW


def _caller(
    kind: str, *, organization: str | None = None, patient: str | None = None
) -> AccessContext:
    return AccessContext(
        subject=f"test:{kind}",
        kind=kind,  # type: ignore[arg-type]
        patient_id=patient,
        organization=organization,
        client_id=None,
        account_id=None,
        permissions=Permissions.everything(),
        purposes=frozenset(),
        practitioner=None,
        representative=None,
    )


def test_each_kind_of_caller_gets_the_same_condition_object_every_time() -> None:
    for ctx in (
        AccessContext.full(),
        _caller("patient", patient="p-1"),
        _caller("system", organization="Organization/mee"),
    ):
        assert visible(ctx, ROW) is visible(ctx, ROW)


def test_the_inwoner_is_a_bind_parameter_so_every_inwoner_shares_one_condition() -> None:
    assert visible(_caller("patient", patient="p-1"), ROW) is visible(
        _caller("patient", patient="p-2"), ROW
    )


def test_partners_with_other_grantees_or_actions_get_their_own_conditions() -> None:
    mee = _caller("system", organization="Organization/mee")
    ggz = _caller("system", organization="Organization/ggz")
    assert visible(mee, ROW) is not visible(ggz, ROW)
    assert visible(mee, ROW) is not visible(mee, ROW, action="correct")
