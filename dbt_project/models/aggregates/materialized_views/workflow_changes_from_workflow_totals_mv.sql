{#-
  Every insert into workflow_totals (its own views' rows and reconciliation's delta rows alike)
  leaves the keys it touched in workflow_changes, with the time the insert ran.
-#}
{{ materialization_target_table(ref('workflow_changes')) }}

{{ changed_keys(ref('workflow_totals')) }}
