"""Kafka on one machine: a real Apache Kafka broker for local use and tests, and the topics.

- `jars`: Kafka's jars (pom.xml beside this file, fetched by Maven once) and the Java to run them.
- `broker`: one KRaft node on loopback ports: its configuration, start, readiness and stop.
- `supervise`: `analytics kafka` in the foreground, and the broker as a component of `up --with-kafka`.
- `topics`: creating the product's topics and checking that they exist.
"""
