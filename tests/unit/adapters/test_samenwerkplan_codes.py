"""The SDK's copy of the levensdomein codes is the vault's own CodeSystem."""

from adapters.samenwerkplan import codes
from vault.fhir import codesystems


def test_the_sdk_writes_the_vaults_levensdomein_codes() -> None:
    assert codes.LEVENSDOMEIN == codesystems.LEVENSDOMEIN
    assert codes.LEVENSDOMEINEN == codesystems.LEVENSDOMEINEN
