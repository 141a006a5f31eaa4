from django.core.management import call_command

from integration.core.errors import IntegrationError
from integration.management.commands import errors_doc


def test_docs_errors_md_matches_the_error_tables_in_the_code():
    # Fails when a client's ERROR_TABLE changed without `manage.py errors_doc`.
    call_command("errors_doc", "--check")


def test_every_rule_maps_to_one_of_our_error_classes():
    for provider, table in errors_doc.PROVIDERS:
        assert table, f"{provider} has an empty ERROR_TABLE"
        codes = [rule.code for rule in table]
        assert len(codes) == len(set(codes)), f"duplicate codes in {provider}"
        assert all(issubclass(rule.error_class, IntegrationError) for rule in table)
