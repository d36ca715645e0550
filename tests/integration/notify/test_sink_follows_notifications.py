"""End to end: a change in the plan reaches the partner's sink database through a
notification, and a revoked grant empties it, with the SDK's receiver on 127.0.0.1."""

from __future__ import annotations

import queue
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from adapters.sdk import (
    Notification,
    NotificationReceiver,
    Synchroniser,
    apply_notification,
    subscription_resource,
)
from adapters.sink import SinkAdapter
from tests.factories import goal
from tests.integration.notify.conftest import WAIT
from tests.support import free_port
from tests.support.partners import held, share
from vault.testing import RegisteredClient, ThrowawayVault


def test_a_plan_change_reaches_the_partner_sink_through_a_notification(
    notify_vault: ThrowawayVault, partner: RegisteredClient, inwoner: str, sink: SinkAdapter
) -> None:
    mine = notify_vault.write(goal(patient_id=inwoner, text="Ik wil weer werken"))
    consent_id = share(notify_vault, inwoner, partner, "Goal")
    handled: queue.Queue[Notification] = queue.Queue()
    secret = secrets.token_urlsafe(24)

    with notify_vault.client(partner) as client:
        sync = Synchroniser(client, sink, types=["Goal"], patients=[inwoner])
        sync.sync()
        assert held(sink) == {f"Goal/{mine['id']}": "Ik wil weer werken"}

        def handle(notification: Notification) -> None:
            apply_notification(
                notification, client=client, target=sink, synchroniser=sync, types=["Goal"]
            )
            handled.put(notification)

        with NotificationReceiver(handle, secret=secret) as receiver:
            sub = client.subscribe(
                subscription_resource(receiver.url, secret=secret, types=["Goal"])
            )
            receiver.subscriptions.add(sub["id"])
            try:
                mine["description"] = {"text": "Ik werk vier dagen per week"}
                notify_vault.write(mine)
                assert handled.get(timeout=WAIT).focus == f"Goal/{mine['id']}"
                assert held(sink) == {f"Goal/{mine['id']}": "Ik werk vier dagen per week"}

                notify_vault.set_consent_status(consent_id, "inactive")
                notification = handled.get(timeout=WAIT)
                assert notification.kind == "access-ended"
                assert notification.patient_id == inwoner
                assert held(sink) == {}
            finally:
                client.unsubscribe(sub["id"])


def test_vault_adapter_listen_keeps_the_sink_in_step_until_stopped(
    notify_vault: ThrowawayVault, partner: RegisteredClient, inwoner: str, tmp_path: Path
) -> None:
    mine = notify_vault.write(goal(patient_id=inwoner, text="Eerst"))
    consent_id = share(notify_vault, inwoner, partner, "Goal")
    config = partner.write_config(
        tmp_path,
        vault_url=notify_vault.url,
        adapter_class="adapters.sink:SinkAdapter",
        adapter_settings={"database_url": f"sqlite:///{tmp_path / 'partner.db'}"},
        types=["Goal"],
        patients=[inwoner],
    )
    command = [str(Path(sys.executable).with_name("vault-adapter")), "listen"]
    port = free_port()
    process = subprocess.Popen(
        [*command, "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sink = SinkAdapter({"database_url": f"sqlite:///{tmp_path / 'partner.db'}"})
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
        assert held(sink) == {f"Goal/{mine['id']}": "Eerst"}

        notify_vault.write({**mine, "description": {"text": "Daarna"}})
        _wait_until(lambda: held(sink).get(f"Goal/{mine['id']}") == "Daarna")
        notify_vault.set_consent_status(consent_id, "inactive")
        _wait_until(lambda: held(sink) == {})
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=WAIT)
        sink.close()
    assert process.returncode == 0, output
    # One line per event: what arrived, and what the adapter did with it.
    goal_ref = f"Goal/{mine['id']}"
    assert re.search(
        rf"^event \d+ change {goal_ref} \(PUT\): upserted {goal_ref}$", output, re.M
    ), output
    assert re.search(
        rf"^event \d+ access-ended Consent/{consent_id} for Patient/{inwoner}: "
        r"full sync: upserted 0, removed 1$",
        output,
        re.M,
    ), output
    with notify_vault.client(partner) as client:
        assert client.get_json("Subscription")["total"] == 0  # it unsubscribed on the way out


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the sink did not follow the notification"
        time.sleep(0.05)
