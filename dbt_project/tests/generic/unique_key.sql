{#-
  A table's key: no two rows share it. Tables whose parts merge in the background (the MergeTree
  family) are read with FINAL, which merges the rows of one sorting key as the table will: a key
  that is not the table's grain, or duplicates the gate let through, still show up twice.
  final=false for tables that never hold two rows of a key (EmbeddedRocksDB) and for views.
-#}
{% test unique_key(model, columns, final=true) %}
select {{ columns | join(', ') }}, count() as rows
from {{ model }} {{ 'final' if final }}
group by {{ columns | join(', ') }}
having rows > 1
{% endtest %}
