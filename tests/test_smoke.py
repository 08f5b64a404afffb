import urllib.request


def test_version_over_plain_http(clickhouse):
    with urllib.request.urlopen(f"{clickhouse.url}/?query=SELECT%20version()") as response:
        assert response.read().decode().strip().count(".") == 3


def test_client_gets_its_own_database(ch):
    assert ch.command("SELECT currentDatabase()").startswith("test_")
