"""The gateway from a non-Rust client: Python grpcio with stubs generated
from proto/ at test time (scripts/test-gateway.sh)."""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections import defaultdict
from typing import Dict, Iterator, List

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore

from jetstation.v1 import jetstation_pb2 as pb
from jetstation.v1 import jetstation_pb2_grpc as rpc

ADDR = os.environ["GATEWAY_ADDR"]
TOKEN = [("authorization", "Bearer token-a")]


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(ADDR) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def error_kind(error: grpc.RpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


def test_ten_thousand_keyed_messages_in_order_through_the_gateway(channel: grpc.Channel) -> None:
    stations = rpc.StationsStub(channel)
    stations.CreateStation(
        pb.CreateStationRequest(name="py-bulk", config=pb.StationConfig(partitions=4)), metadata=TOKEN
    )
    producer = rpc.ProducerStub(channel)
    requests = (
        pb.SendRequest(
            station="py-bulk",
            message=pb.OutgoingMessage(payload=f"k{i % 100}:{i // 100}".encode(), key=f"k{i % 100}"),
        )
        for i in range(10_000)
    )
    results = list(producer.SendStream(requests, metadata=TOKEN))
    assert len(results) == 10_000
    assert all(r.WhichOneof("result") == "receipt" for r in results)

    consumer = rpc.ConsumerStub(channel)
    outgoing: "queue.Queue[pb.ConsumeRequest | None]" = queue.Queue()
    outgoing.put(pb.ConsumeRequest(join=pb.Join(station="py-bulk", group="g", credit=256, concurrency=16)))

    def requests_iter() -> Iterator[pb.ConsumeRequest]:
        while True:
            item = outgoing.get()
            if item is None:
                return
            yield item

    seen: Dict[str, List[int]] = defaultdict(list)
    total = 0
    stream = consumer.Consume(requests_iter(), metadata=TOKEN)
    for response in stream:
        if response.WhichOneof("response") == "joined":
            continue
        m = response.message
        key, index = m.payload.decode().split(":")
        seen[key].append(int(index))
        outgoing.put(pb.ConsumeRequest(settle=pb.Settle(delivery_id=m.delivery_id, outcome=pb.Settle.ACK)))
        total += 1
        if total == 10_000:
            break
    outgoing.put(None)
    stream.cancel()
    assert len(seen) == 100
    assert all(v == list(range(100)) for v in seen.values()), "order per key"


def test_a_send_stream_of_small_messages_waits_out_a_stalled_broker(channel: grpc.Channel) -> None:
    """grpcio sends each message as its own small HTTP/2 DATA frame. While the
    broker is stopped the gateway cannot take more messages; the client must
    then be held back by flow control, not disconnected (h2 ends a connection
    that leaves too many small frames unread), and every message must land."""
    rpc.StationsStub(channel).CreateStation(
        pb.CreateStationRequest(name="py-stall", config=pb.StationConfig(partitions=2)), metadata=TOKEN
    )
    nats = int(os.environ["NATS_PID"])
    count = 30_000
    sent = threading.Event()

    def requests() -> Iterator[pb.SendRequest]:
        for i in range(count):
            if i == 100:
                # The broker stops once the stream is flowing; the rest of the
                # messages queue up behind it.
                os.kill(nats, signal.SIGSTOP)
                threading.Timer(3.0, lambda: os.kill(nats, signal.SIGCONT)).start()
            yield pb.SendRequest(
                station="py-stall", message=pb.OutgoingMessage(payload=f"{i}".encode(), key=f"k{i % 10}")
            )
        sent.set()

    try:
        results = list(rpc.ProducerStub(channel).SendStream(requests(), metadata=TOKEN, timeout=90))
    finally:
        os.kill(nats, signal.SIGCONT)
    assert sent.is_set()
    assert len(results) == count
    kinds = {r.WhichOneof("result") for r in results}
    assert kinds == {"receipt"}, [r.error for r in results if r.WhichOneof("result") == "error"][:3]
    # A message sent again after the stall is answered as a duplicate with
    # the sequence of its first copy. Each partition's receipts, in request
    # order, are 1, 2, 3, ...: every message stored once, in order, none lost.
    per_partition: Dict[int, List[int]] = defaultdict(list)
    for r in results:
        per_partition[r.receipt.partition].append(r.receipt.sequence)
    assert sorted(per_partition) == [0, 1]
    for sequences in per_partition.values():
        assert sequences == list(range(1, len(sequences) + 1))


def test_a_schema_invalid_message_is_invalid_argument_naming_the_path(channel: grpc.Channel) -> None:
    schemas = rpc.SchemasStub(channel)
    schemas.RegisterSchema(
        pb.RegisterSchemaRequest(
            name="py-pay",
            format=pb.SCHEMA_FORMAT_JSON_SCHEMA,
            source='{"type":"object","properties":{"salary":{"type":"number"}}}',
        ),
        metadata=TOKEN,
    )
    rpc.StationsStub(channel).CreateStation(
        pb.CreateStationRequest(name="py-payroll", config=pb.StationConfig(schema="py-pay")), metadata=TOKEN
    )
    with pytest.raises(grpc.RpcError) as refused:
        rpc.ProducerStub(channel).Send(
            pb.SendRequest(station="py-payroll", message=pb.OutgoingMessage(payload=b'{"salary":"ten"}')),
            metadata=TOKEN,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "/salary" in (refused.value.details() or "")
    assert error_kind(refused.value) == "schema_validation"


def test_an_unknown_token_is_unauthenticated(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        rpc.StationsStub(channel).ListStations(
            pb.ListStationsRequest(), metadata=[("authorization", "Bearer nope")]
        )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
