"""Pipeline health: fresh events per topic, no new dead letters, Kafka consumers keeping up."""
