"""Kafka source and sinks, built from ``settings.kafka`` with Flink's official connector.

The connector jars are not part of PyFlink; ``scripts/fetch_deps.py`` puts them in
``.cache/deps/jars`` (flink-connector-kafka 4.0.1-2.0 with its kafka-clients), and they reach
the MiniCluster through ``pipeline.jars`` (``--jarfile`` for ``flink run``).
"""

from __future__ import annotations

from pyflink.common import SimpleStringSchema
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import get_java_class

from conf.settings import KafkaSettings
from jobs.fetched_deps import kafka_jars

__all__ = ["kafka_jars", "kafka_source", "kafka_sink"]

_GUARANTEES = {"at-least-once": DeliveryGuarantee.AT_LEAST_ONCE, "exactly-once": DeliveryGuarantee.EXACTLY_ONCE,
               "none": DeliveryGuarantee.NONE}


def _starting(k: KafkaSettings) -> KafkaOffsetsInitializer:
    if k.starting_offsets == "earliest":
        return KafkaOffsetsInitializer.earliest()
    if k.starting_offsets == "latest":
        return KafkaOffsetsInitializer.latest()
    if k.starting_offsets == "committed":
        # PyFlink names the shaded OffsetResetStrategy of the SQL fat jar; the plain jars have it unshaded.
        jvm = get_gateway().jvm
        earliest = jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST
        return KafkaOffsetsInitializer(_offsets_initializer().committedOffsets(earliest))
    return KafkaOffsetsInitializer.timestamp(k.starting_timestamp_ms)


def kafka_source(k: KafkaSettings) -> KafkaSource:
    builder = KafkaSource.builder() \
        .set_bootstrap_servers(k.bootstrap_servers) \
        .set_topics(*k.topics) \
        .set_group_id(k.group_id) \
        .set_starting_offsets(_starting(k)) \
        .set_value_only_deserializer(SimpleStringSchema())
    if k.stopping_offsets:
        builder = builder.set_bounded(_fixed_offsets(k.stopping_offsets))
    for key, value in k.consumer_properties.items():
        builder = builder.set_property(key, value)
    return builder.build()


def _fixed_offsets(offsets: dict[str, int]) -> KafkaOffsetsInitializer:
    """PyFlink's ``KafkaOffsetsInitializer.offsets`` names the *shaded* TopicPartition of the SQL
    fat jar; with the plain connector + kafka-clients jars the class is unshaded, so build it here."""
    jvm = get_gateway().jvm
    j_map = jvm.org.apache.flink.python.util.HashMapWrapper(None, get_java_class(jvm.Long))  # values as Long
    for key, offset in offsets.items():
        topic, _, partition = key.rpartition(":")
        j_map.put(jvm.org.apache.kafka.common.TopicPartition(topic, int(partition)), offset)
    return KafkaOffsetsInitializer(_offsets_initializer().offsets(j_map.asMap()))


def _offsets_initializer():  # noqa: ANN202 - a py4j JavaClass
    return get_gateway().jvm.org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer


def kafka_sink(k: KafkaSettings, topic: str) -> KafkaSink:
    serializer = KafkaRecordSerializationSchema.builder() \
        .set_topic(topic) \
        .set_value_serialization_schema(SimpleStringSchema()) \
        .build()
    builder = KafkaSink.builder() \
        .set_bootstrap_servers(k.bootstrap_servers) \
        .set_record_serializer(serializer) \
        .set_delivery_guarantee(_GUARANTEES[k.delivery_guarantee])
    if k.delivery_guarantee == "exactly-once":
        builder = builder.set_transactional_id_prefix(f"{k.transactional_id_prefix}-{topic}")
    for key, value in k.producer_properties.items():
        builder = builder.set_property(key, value)
    return builder.build()
