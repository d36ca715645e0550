"""End to end: the sink adapter keeps a partner database in step with the inwoner's grants."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app
from adapters.sdk import AccessRevoked, VaultClient
from adapters.sdk.sync import Synchroniser
from adapters.sink import SinkAdapter
from tests.factories import careplan, goal
from tests.support.partners import held, share
from vault.testing import RegisteredClient, ThrowawayVault


def test_sink_syncs_grants_updates_and_forgets_a_revoked_grant(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, inwoner: str, sink: SinkAdapter
) -> None:
    vault = throwaway_vault
    first = vault.write(goal(patient_id=inwoner, text="Ik wil mijn schulden op een rij"))
    second = vault.write(goal(patient_id=inwoner, text="Ik wil weer werken"))
    plan = vault.write(careplan(patient_id=inwoner, goals=[first["id"]]))
    consent_id = share(vault, inwoner, partner, "Goal")  # goals only, not the plan

    with vault.client(partner) as client:
        sync = Synchroniser(client, sink, types=["Goal", "CarePlan"], patients=[inwoner])
        result = sync.sync()
        assert held(sink) == {
            f"Goal/{first['id']}": "Ik wil mijn schulden op een rij",
            f"Goal/{second['id']}": "Ik wil weer werken",
        }
        assert f"CarePlan/{plan['id']}" not in result.upserted

        first["description"] = {"text": "Mijn schulden staan op een rij"}
        vault.write(first)
        result = sync.sync()
        assert result.upserted == [f"Goal/{first['id']}"]
        assert held(sink)[f"Goal/{first['id']}"] == "Mijn schulden staan op een rij"

        vault.set_consent_status(consent_id, "inactive")  # the inwoner stops sharing
        result = sync.sync()
        assert sorted(result.removed) == sorted([f"Goal/{first['id']}", f"Goal/{second['id']}"])
        assert held(sink) == {}
        with pytest.raises(AccessRevoked):
            result.raise_for_revoked()
        with pytest.raises(AccessRevoked):
            client.read("Goal", first["id"])


def test_sink_removes_a_deleted_resource(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, inwoner: str, sink: SinkAdapter
) -> None:
    kept = throwaway_vault.write(goal(patient_id=inwoner))
    gone = throwaway_vault.write(goal(patient_id=inwoner, text="Weg"))
    share(throwaway_vault, inwoner, partner, "Goal")
    with throwaway_vault.client(partner) as client:
        sync = Synchroniser(client, sink, types=["Goal"], patients=[inwoner])
        sync.sync()
        throwaway_vault.delete("Goal", gone["id"])
        assert sync.sync().removed == [f"Goal/{gone['id']}"]
    assert set(held(sink)) == {f"Goal/{kept['id']}"}


def test_all_granted_sync_sees_only_granting_inwoners(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, sink: SinkAdapter
) -> None:
    from tests.factories import patient

    sharing = throwaway_vault.write(patient())["id"]
    private = throwaway_vault.write(patient())["id"]
    shared_goal = throwaway_vault.write(goal(patient_id=sharing))
    throwaway_vault.write(goal(patient_id=private))
    share(throwaway_vault, sharing, partner, "Goal")
    with throwaway_vault.client(partner) as client:
        Synchroniser(client, sink, types=["Goal"], patients=None).sync()
    assert set(held(sink)) == {f"Goal/{shared_goal['id']}"}


def test_demo_partner_from_the_test_kit_sees_daans_plan(vault_partner: VaultClient) -> None:
    goals = list(vault_partner.search("Goal", {"patient": "demo-inwoner-daan"}))
    assert len(goals) == 3
    assert list(vault_partner.search("Goal", {"patient": "demo-inwoner-sanne"})) == []


def test_vault_adapter_sync_command_runs_the_configured_adapter(
    throwaway_vault: ThrowawayVault, partner: RegisteredClient, inwoner: str, tmp_path: Path
) -> None:
    shared = throwaway_vault.write(goal(patient_id=inwoner))
    consent_id = share(throwaway_vault, inwoner, partner, "Goal")
    config = partner.write_config(
        tmp_path,
        vault_url=throwaway_vault.url,
        adapter_class="adapters.sink:SinkAdapter",
        adapter_settings={"database_url": f"sqlite:///{tmp_path / 'partner.db'}"},
        types=["Goal"],
        patients=[inwoner],
    )
    runner = CliRunner()
    first = runner.invoke(app, ["sync", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert "upserted 1, removed 0" in first.output

    throwaway_vault.set_consent_status(consent_id, "inactive")
    second = runner.invoke(app, ["sync", "--config", str(config)])
    assert second.exit_code == 0, second.output
    assert f"removed Goal/{shared['id']} (no longer granted)" in second.output


def test_vault_adapter_refuses_a_config_without_an_adapter(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[vault]\nurl = "http://x"\nclient_id = "c"\nkey_file = "k.pem"\n')
    result = CliRunner().invoke(app, ["sync", "--config", str(config)])
    assert result.exit_code == 2
    assert "[adapter] needs 'class'" in result.output
