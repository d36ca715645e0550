"""Who may act for the inwoner (``vault/consent/representation.py``), rule by rule, in process.

``test_child_consent.py`` crosses each birthday through the real API and the page; here
each rule is held exactly, against the real database, so ``make mutate`` can see it: the
birthday instant in Europe/Amsterdam, every stage boundary to the microsecond, every
refusal's words and place (the OperationOutcome an app shows the family), when a signature
carries over to a new version, the roles' history at the log's millisecond grain, and which
roles "Stop met alles delen" ends (issue 16).
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from tests.factories import goal, patient, related_person
from tests.support.harness import Harness, network_account
from vault.consent import representation as rep
from vault.consent.representation import PARENT, Role
from vault.kernel.config import Settings
from vault.kernel.errors import Unprocessable
from vault.kernel.runtime import Runtime, now_micros
from vault.oauth.accounts import authenticate

BORN = date(2014, 7, 1)  # a summer birthday: Amsterdam is UTC+2 then


def _utc(year: int, month: int, day: int, hour: int) -> int:
    return calendar.timegm(datetime(year, month, day, hour, tzinfo=UTC).utctimetuple()) * 1_000_000


# --- the birthday and the stages ---


@pytest.mark.parametrize(
    ("born", "years", "instant"),
    [
        (date(2014, 7, 1), 12, _utc(2026, 6, 30, 22)),  # CEST
        (date(2010, 2, 28), 12, _utc(2022, 2, 27, 23)),  # CET
        (date(2008, 2, 29), 13, _utc(2021, 2, 28, 23)),  # no 29 February: 1 March
        (date(2008, 2, 29), 16, _utc(2024, 2, 28, 23)),  # a leap year: 29 February
    ],
)
def test_a_birthday_begins_at_midnight_in_amsterdam(born: date, years: int, instant: int) -> None:
    assert rep.birthday(born, years) == instant


def test_each_stage_begins_on_its_birthday_to_the_microsecond() -> None:
    assert rep.stage(None, 0) == "adult"
    twelve, sixteen, eighteen = (rep.birthday(BORN, y) for y in (12, 16, 18))
    assert [rep.stage(BORN, t) for t in (twelve - 1, twelve)] == ["parents", "together"]
    assert [rep.stage(BORN, t) for t in (sixteen - 1, sixteen)] == ["together", "own"]
    assert [rep.stage(BORN, t) for t in (eighteen - 1, eighteen)] == ["own", "adult"]


# --- the birth date that decides ---


def _refusal(raised: pytest.ExceptionInfo[Unprocessable]) -> tuple[str, list[str], str, int]:
    error = raised.value
    return error.diagnostics, error.expression, error.code, error.status


def test_the_birth_date_is_kept_and_only_the_operator_changes_it(runtime: Runtime) -> None:
    pid = f"kind-{uuid.uuid4().hex[:8]}"

    def write(body: dict[str, Any], *, may_change: bool) -> None:
        with runtime.db.write() as conn:
            rep.record_birth_date(conn, patient_id=pid, patient=body, may_change=may_change)

    def kept() -> date | None:
        with runtime.db.read() as conn:
            return rep.birth_date_of(conn, pid)

    write({"birthDate": "2014-07-01"}, may_change=False)  # the first one may come from anyone
    assert kept() == date(2014, 7, 1)
    write({"birthDate": "2014-07-01"}, may_change=False)  # the same again: nothing changes
    for body in ({"birthDate": "2012-07-01"}, {}, {"birthDate": "2014-07"}, {"birthDate": 2014}):
        with pytest.raises(Unprocessable) as raised:
            write(body, may_change=False)
        assert _refusal(raised) == (
            "Patient.birthDate decides who may decide for a child; only the vault's "
            "operator can change it",
            ["Patient.birthDate"],
            "business-rule",
            422,
        )
        assert kept() == date(2014, 7, 1)
    write({"birthDate": "2012-07-01"}, may_change=True)
    assert kept() == date(2012, 7, 1)
    write({"birthDate": "2012-07"}, may_change=True)  # not a whole date: none known
    assert kept() is None


# --- signatures on a child's Consent ---

CHILD_SIGNS = {"reference": "Patient/kind"}
MUM = "RelatedPerson/mum"
DAD = "RelatedPerson/dad"


def _consent(status: str, *signers: str, note: str = "school") -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Consent",
        "status": status,
        "provision": {"type": "permit", "purpose": [{"code": note}]},
        "meta": {"versionId": "1"},
        "text": {"status": "generated"},
    }
    if signers:
        body["performer"] = [{"reference": s} for s in signers]
    return body


@pytest.fixture
def family(runtime: Runtime) -> Iterator[str]:
    """A child born on BORN with two parents with gezag; yields her patient id."""
    pid = f"kind-{uuid.uuid4().hex[:8]}"
    with runtime.db.write() as conn:
        rep.record_birth_date(
            conn, patient_id=pid, patient={"birthDate": BORN.isoformat()}, may_change=True
        )
        for parent in ("mum", "dad"):
            rep.set_role(conn, patient_id=pid, related_person_id=parent, legal_basis=PARENT, now=1)
        rep.set_role(conn, patient_id=pid, related_person_id="aunt", legal_basis="mentor", now=1)
    yield pid


def _window(
    runtime: Runtime,
    pid: str,
    consent: dict[str, Any],
    *,
    age: int,
    writer: str | None,
    previous: dict[str, Any] | None = None,
) -> int | None:
    now = rep.birthday(BORN, age) + 1
    with runtime.db.read() as conn:
        return rep.child_consent_window(
            conn,
            _own(consent, pid),
            patient_id=pid,
            now=now,
            writer=writer,
            previous=None if previous is None else _own(previous, pid),
        )


def _own(consent: dict[str, Any], pid: str) -> dict[str, Any]:
    """The Consent with ``Patient/kind`` read as this child."""
    performers = [
        {"reference": f"Patient/{pid}"} if p == CHILD_SIGNS else p
        for p in consent.get("performer", [])
    ]
    return {**consent, "performer": performers} if "performer" in consent else consent


REFUSALS = {
    "stranger": "A child's Consent is signed only by the child and a parent with gezag",
    "others": "Only the one who writes a child's Consent can add their own agreement; "
    "a changed Consent needs everyone's agreement again",
    "young": "Under 12 a child's parents with gezag decide; the child signs from 12",
    "parents": "Under 12 a parent with gezag must agree: write the Consent as proposed",
    "together": "From 12 to 15 the child and a parent with gezag both agree: write the Consent "
    "as proposed until both have",
    "own": "From 16 the child decides alone: the child must agree",
}
WHERE = {
    "young": "Consent.performer",
    "stranger": "Consent.performer",
    "others": "Consent.performer",
}


def _refused(runtime: Runtime, pid: str, why: str, consent: dict[str, Any], **kw: Any) -> None:
    with pytest.raises(Unprocessable) as raised:
        _window(runtime, pid, consent, **kw)
    where = WHERE.get(why, "Consent.status")
    assert _refusal(raised) == (REFUSALS[why], [where], "business-rule", 422)


def test_under_12_a_parent_shares_until_the_12th_birthday(runtime: Runtime, family: str) -> None:
    twelve = rep.birthday(BORN, 12)
    assert _window(runtime, family, _consent("active", MUM), age=11, writer=MUM) == twelve
    assert _window(runtime, family, _consent("active", MUM, DAD), age=11, writer=None) == twelve
    assert _window(runtime, family, _consent("proposed", MUM), age=11, writer=MUM) is None
    _refused(runtime, family, "parents", _consent("active"), age=11, writer=f"Patient/{family}")
    _refused(
        runtime,
        family,
        "young",
        _consent("proposed", CHILD_SIGNS["reference"]),
        age=11,
        writer=f"Patient/{family}",
    )
    _refused(
        runtime,
        family,
        "young",
        _consent("active", MUM, CHILD_SIGNS["reference"]),
        age=11,
        writer=None,
    )


def test_from_12_to_15_the_child_and_a_parent_both_agree(runtime: Runtime, family: str) -> None:
    child = f"Patient/{family}"
    both = _consent("active", MUM, CHILD_SIGNS["reference"])
    assert _window(runtime, family, both, age=12, writer=None) is None
    assert _window(runtime, family, both, age=15, writer=None) is None
    assert _window(runtime, family, _consent("proposed", MUM), age=12, writer=MUM) is None
    _refused(runtime, family, "together", _consent("active", MUM), age=12, writer=MUM)
    _refused(runtime, family, "together", _consent("active"), age=15, writer=child)
    # The child's "ja" to her mother's proposal: the mother's signature carries over.
    proposal = _consent("proposed", MUM)
    assert _window(runtime, family, both, age=13, writer=child, previous=proposal) is None
    active = _consent("active", MUM)
    assert _window(runtime, family, both, age=13, writer=child, previous=active) is None
    # Her mother's "ja" to the child's own proposal (no performer: the child herself).
    own = _consent("proposed")
    assert _window(runtime, family, both, age=14, writer=MUM, previous=own) is None


def test_a_signature_carries_over_only_to_the_same_agreement(runtime: Runtime, family: str) -> None:
    child = f"Patient/{family}"
    both = _consent("active", MUM, CHILD_SIGNS["reference"])
    for previous in (
        None,  # a new Consent: the child cannot sign for her mother
        _consent("proposed", MUM, note="sport"),  # the agreement changed
        _consent("rejected", MUM),  # no longer an agreement
        _consent("inactive", MUM),
        _consent("proposed", DAD),  # her father agreed, not her mother
    ):
        _refused(runtime, family, "others", both, age=13, writer=child, previous=previous)
    # Her father cannot be added to what her mother signed, even to the same agreement.
    three = _consent("active", MUM, DAD, CHILD_SIGNS["reference"])
    _refused(
        runtime, family, "others", three, age=13, writer=child, previous=_consent("proposed", MUM)
    )


def test_only_the_child_and_her_parents_with_gezag_sign(runtime: Runtime, family: str) -> None:
    for stranger in ("RelatedPerson/aunt", "RelatedPerson/neighbour", "Patient/other"):
        _refused(
            runtime, family, "stranger", _consent("proposed", MUM, stranger), age=13, writer=None
        )
    with pytest.raises(Unprocessable) as raised:
        _window(
            runtime,
            family,
            {**_consent("proposed"), "performer": [{"display": "Mama"}]},
            age=13,
            writer=None,
        )
    assert _refusal(raised) == (
        "Consent.performer must be references",
        ["Consent.performer[0]"],
        "business-rule",
        422,
    )
    with pytest.raises(Unprocessable) as raised:
        _window(
            runtime,
            family,
            {**_consent("proposed", MUM), "performer": [{"reference": MUM}, None]},
            age=13,
            writer=None,
        )
    assert _refusal(raised)[:2] == (
        "Consent.performer must be references",
        ["Consent.performer[1]"],
    )


def test_from_16_the_child_decides_alone(runtime: Runtime, family: str) -> None:
    child = f"Patient/{family}"
    assert _window(runtime, family, _consent("active"), age=16, writer=child) is None
    assert (
        _window(runtime, family, _consent("active", CHILD_SIGNS["reference"]), age=17, writer=child)
        is None
    )
    _refused(runtime, family, "own", _consent("active", MUM), age=16, writer=MUM)
    # At 18 she is an adult: no rule of this module applies to what she signs.
    assert _window(runtime, family, _consent("active", MUM), age=18, writer=MUM) is None


def test_no_known_birth_date_means_an_adult(runtime: Runtime) -> None:
    with runtime.db.read() as conn:
        assert (
            rep.child_consent_window(
                conn,
                _consent("active", "RelatedPerson/x"),
                patient_id="nobody",
                now=0,
                writer="RelatedPerson/x",
                previous=None,
            )
            is None
        )


# --- roles, their history, and who is still of the network ---


def test_roles_are_started_changed_and_ended_never_rewritten(runtime: Runtime) -> None:
    pid = f"inw-{uuid.uuid4().hex[:8]}"
    with runtime.db.write() as conn:
        rep.set_role(conn, patient_id=pid, related_person_id="a", legal_basis="machtiging", now=10)
        rep.set_role(conn, patient_id=pid, related_person_id="a", legal_basis="machtiging", now=20)
        rep.set_role(conn, patient_id=pid, related_person_id="a", legal_basis="mentor", now=30)
        rep.set_role(conn, patient_id=pid, related_person_id="b", legal_basis="machtiging", now=40)
        rep.set_role(conn, patient_id=pid, related_person_id="c", legal_basis="curator", now=40)
        rep.set_role(conn, patient_id=pid, related_person_id="d", legal_basis="machtiging", now=40)
        rep.set_role(conn, patient_id=pid, related_person_id="d", legal_basis=None, now=45)
        rep.set_role(conn, patient_id="other", related_person_id="a", legal_basis="curator", now=1)
        assert rep.current_roles(conn, patient_id=pid) == {
            "RelatedPerson/a": "mentor",
            "RelatedPerson/b": "machtiging",
            "RelatedPerson/c": "curator",
        }
        # "Stop met alles delen": what she gave, not what a court decided.
        rep.end_roles(conn, patient_id=pid, now=50, voluntary_only=True)
        assert rep.current_roles(conn, patient_id=pid) == {
            "RelatedPerson/a": "mentor",
            "RelatedPerson/c": "curator",
        }
        rep.end_roles(conn, patient_id=pid, now=60, related_person_id="c")
        assert rep.current_roles(conn, patient_id=pid) == {"RelatedPerson/a": "mentor"}
        rep.end_roles(conn, patient_id=pid, now=65)  # every role, a court's too
        assert rep.current_roles(conn, patient_id=pid) == {}
        # An ended role is no role: the same one can be given again.
        rep.set_role(conn, patient_id=pid, related_person_id="b", legal_basis="machtiging", now=70)
        assert rep.current_roles(conn, patient_id=pid) == {"RelatedPerson/b": "machtiging"}
        history = rep.role_history(conn, patient_id=pid)
        assert rep.current_roles(conn, patient_id="other") == {"RelatedPerson/a": "curator"}
    assert {
        person: sorted(roles, key=lambda r: r.started_at) for person, roles in history.items()
    } == {
        "RelatedPerson/a": [
            Role("RelatedPerson/a", "machtiging", 10, 30),
            Role("RelatedPerson/a", "mentor", 30, 65),
        ],
        "RelatedPerson/b": [
            Role("RelatedPerson/b", "machtiging", 40, 50),
            Role("RelatedPerson/b", "machtiging", 70, None),
        ],
        "RelatedPerson/c": [Role("RelatedPerson/c", "curator", 40, 60)],
        "RelatedPerson/d": [Role("RelatedPerson/d", "machtiging", 40, 45)],
    }


def test_the_role_at_an_instant_is_read_at_the_logs_millisecond() -> None:
    history = {
        "RelatedPerson/a": [
            Role("RelatedPerson/a", "machtiging", 1_000_500, 2_000_700),
            Role("RelatedPerson/a", "mentor", 2_000_700, None),
        ]
    }
    at = [
        rep.role_at(history, "RelatedPerson/a", when)
        for when in (999_999, 1_000_000, 1_999_999, 2_000_000, 2_000_699, 9_999_999_999)
    ]
    assert at == [None, "machtiging", "machtiging", "mentor", "mentor", "mentor"]
    assert rep.role_at(history, "RelatedPerson/b", 1_500_000) is None
    ended = {"RelatedPerson/a": [Role("RelatedPerson/a", "mentor", 1_000, 5_000)]}
    assert [rep.role_at(ended, "RelatedPerson/a", t) for t in (4_999, 5_000)] == ["mentor", None]


def test_someone_of_the_network_counts_only_as_a_current_person_of_hers(
    settings: Settings, runtime: Runtime
) -> None:
    harness = Harness(runtime, settings)
    pid = harness.create(patient(), patient_id=None).resource_id
    other = harness.create(patient(), patient_id=None).resource_id
    person = harness.create(related_person(patient_id=pid), patient_id=pid).resource_id
    aim = harness.create(goal(patient_id=pid), patient_id=pid).resource_id
    harness.close()
    with runtime.db.read() as conn:
        assert rep.person_is_current(conn, patient_id=pid, related_person_id=person)
        assert not rep.person_is_current(conn, patient_id=other, related_person_id=person)
        assert not rep.person_is_current(conn, patient_id=pid, related_person_id=aim)  # a Goal
        assert not rep.person_is_current(conn, patient_id=pid, related_person_id="nobody")


@pytest.mark.parametrize(("age", "acts"), [(15, True), (16, False), (40, False)])
def test_a_parent_acts_for_the_child_until_she_turns_16(
    settings: Settings, runtime: Runtime, age: int, acts: bool
) -> None:
    harness = Harness(runtime, settings)
    born = date(datetime.now(UTC).year - age - 2, 1, 1)
    pid = harness.create(patient(birthDate=born.isoformat()), patient_id=None).resource_id
    mother = harness.create(related_person(patient_id=pid), patient_id=pid).resource_id
    harness.close()
    username, password = network_account(
        runtime, patient_id=pid, related_person=mother, legal_basis=PARENT
    )
    now = rep.birthday(born, age) + 1
    with runtime.db.read() as conn:
        account = authenticate(conn, username=username, password=password)
        assert account is not None
        place = rep.standing(conn, account_id=account.account_id, now=now)
    expected = (PARENT, None) if acts else (None, PARENT)
    assert place == rep.Standing(pid, mother, *expected)
    with runtime.db.write() as conn:  # her role ended: someone of her network, nothing more
        rep.end_roles(conn, patient_id=pid, now=now_micros())
        assert rep.standing(conn, account_id=account.account_id, now=now) == rep.Standing(
            pid, mother, None
        )
