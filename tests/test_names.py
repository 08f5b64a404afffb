"""core/names.py and the dbt project name the same things: a rename on one side that misses the
other fails here, before anything is built."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from core import names

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "dbt_project" / "models"
MODEL_FILES = {path.stem: path for path in MODELS.rglob("*.sql")}
VIEW_NAME = re.compile(r"^(?P<target>\w+?)_from_(?P<source>\w+)_mv$")


def test_every_table_python_names_is_a_model():
    named = {*names.RAW_TABLES, *names.AGGREGATES, *names.VIEWS, *names.FEEDS}
    assert named - MODEL_FILES.keys() == set()
    # ...and every model that is not a view or a Distributed twin is named in Python
    tables = {
        name
        for name in MODEL_FILES
        if not name.endswith("_mv") and not name.endswith("_all") and "landing" not in MODEL_FILES[name].parts
    }
    assert tables - named == set()


@pytest.mark.parametrize("topic", names.ALL_TOPICS, ids=lambda topic: topic.name)
def test_every_topic_has_its_chain(topic):
    assert {topic.messages, topic.queue, topic.checked, topic.raw} <= MODEL_FILES.keys()
    assert names.view_name(topic.queue, topic.messages) in MODEL_FILES
    assert names.view_name(topic.checked, topic.queue) in MODEL_FILES
    assert names.view_name(topic.raw, topic.checked) in MODEL_FILES
    assert names.view_name(names.DEAD_LETTERS, topic.checked) in MODEL_FILES
    assert MODEL_FILES[topic.queue].parent.name == MODEL_FILES[topic.checked].parent.name == "landing"


@pytest.mark.parametrize("view", sorted(name for name in MODEL_FILES if name.endswith("_mv")))
def test_every_view_is_named_for_its_target_and_source(view):
    match = VIEW_NAME.match(view)
    assert match, f"{view} is not <target>_from_<source>_mv"
    assert match["target"] in MODEL_FILES and match["source"] in MODEL_FILES, view
    text = MODEL_FILES[view].read_text()
    [target] = re.findall(r"materialization_target_table\(ref\('(\w+)'\)\)", text)
    assert target == match["target"], f"{view} writes to {target}"
    assert MODEL_FILES[view].parent.name == "materialized_views"


def test_every_distributed_twin_is_of_a_sharded_table():
    twins = {name.removesuffix("_all") for name in MODEL_FILES if name.endswith("_all")}
    assert twins == {table for table in names.SHARDED}
    for table in twins:
        assert f"distributed_engine('{table}')" in MODEL_FILES[names.distributed(table)].read_text()


def test_the_measures_are_dbts_measure_names():
    macro = (ROOT / "dbt_project" / "macros" / "measures.sql").read_text()
    listed = re.search(r"macro measure_names\(\).*?return\(\[(.*?)\]\)", macro, re.S)
    assert tuple(re.findall(r"'(\w+)'", listed[1])) == names.MEASURES


def test_the_earlier_names_the_upgrade_knows_are_not_current_names():
    macro = (ROOT / "dbt_project" / "macros" / "upgrade_names.sql").read_text()
    renames = dict(re.findall(r"'(\w+)': '(\w+)'", macro))
    assert set(renames.values()) <= set(names.RAW_TABLES)
    dropped = set(re.findall(r"'(\w+_(?:mv|all))'", macro))
    assert dropped and not dropped & MODEL_FILES.keys()
    assert not set(renames) & MODEL_FILES.keys()


def test_sql_names_tables_by_key_and_refuses_an_unknown_one():
    assert names.sql("select count() from $job_log_events where x = {x:String}") == (
        "select count() from analytics.job_log_events where x = {x:String}"
    )
    with pytest.raises(KeyError):
        names.sql("select * from $job_log_lines")


def test_every_table_that_holds_data_has_a_key_test():
    """Each raw table and aggregate declares its grain (unique_key, with FINAL where parts merge)."""
    tested = set()
    for path in MODELS.rglob("*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            if any(isinstance(test, dict) and "unique_key" in test for test in model.get("data_tests", [])):
                tested.add(model["name"])
    assert {*names.RAW_TABLES, *names.AGGREGATES} - tested == set()
