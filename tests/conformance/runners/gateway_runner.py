"""Conformance runner for the gRPC gateway: carries out operations read from
stdin (one JSON object per line) through a Python grpcio client with stubs
generated from proto/ (scripts/conformance.sh puts them on PYTHONPATH), and
answers each on stdout. It reports what happened; tests/conformance/run.py
judges it. Error kinds come from the google.rpc.ErrorInfo the gateway puts in
each status."""

from __future__ import annotations

import base64
import json
import os
import queue
import random
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore

from jetstation.v1 import jetstation_pb2 as pb
from jetstation.v1 import jetstation_pb2_grpc as rpc


class Failure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def kind_of(error: grpc.RpcError) -> str:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return f"grpc:{error.code().name}"


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def answer(value: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def generated(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    keys, size, prefix = spec.get("keys", 0), spec.get("size", 0), spec.get("prefix", "m-")
    return [
        {"payload": f"{prefix}{i}".ljust(size, "."), **({"key": f"k-{i % keys}"} if keys else {})}
        for i in range(spec["count"])
    ]


STORAGE = {"file": pb.STORAGE_FILE, "memory": pb.STORAGE_MEMORY}
STARTS = {
    "earliest": pb.START_POSITION_EARLIEST,
    "latest": pb.START_POSITION_LATEST,
    "snapshot": pb.START_POSITION_SNAPSHOT,
}
CONTRACT = json.loads(
    open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "contract", "jetstation.json")).read()
)


def contract_fields(message: Any, record: str, options: Dict[str, Any]) -> None:
    """Contract options (snake_case, seconds, RFC 3339) into a proto message:
    durations become Durations, times Timestamps, words their enum values."""
    for name, value in options.items():
        kind = CONTRACT["records"][record][name]
        if kind == "duration":
            getattr(message, name).CopyFrom(duration(value))
        elif kind == "storage":
            message.storage = STORAGE[value]
        elif name == "start":
            message.start = STARTS[value]
        elif name == "start_sequence":
            message.start = pb.START_POSITION_SEQUENCE
            message.start_sequence = value
        elif name == "start_time":
            message.start = pb.START_POSITION_TIME
            message.start_time.FromJsonString(value)
        else:
            setattr(message, name, value)


FORMATS = {
    "json_schema": pb.SCHEMA_FORMAT_JSON_SCHEMA,
    "protobuf": pb.SCHEMA_FORMAT_PROTOBUF,
    "avro": pb.SCHEMA_FORMAT_AVRO,
}


class Session:
    """One Consume stream: a member of a consumer group."""

    def __init__(self, gateway: "Gateway", op: Dict[str, Any]) -> None:
        join = pb.Join(station=op["station"], group=op["group"], credit=max(64, op.get("concurrency", 1)))
        start = op.get("start")
        if isinstance(start, str):
            join.start = STARTS[start]
        elif isinstance(start, dict):
            join.start = pb.START_POSITION_SEQUENCE
            join.start_sequence = start["sequence"]
        if "concurrency" in op:
            join.concurrency = op["concurrency"]
        for name in ("ack_wait", "redelivery_delay", "handover_timeout"):
            if name in op:
                getattr(join, name).CopyFrom(duration(op[name]))
        contract_fields(join, "ConsumerOptions", op.get("options", {}))
        self.requests: "queue.Queue[Optional[pb.ConsumeRequest]]" = queue.Queue()
        self.requests.put(pb.ConsumeRequest(join=join))
        self.incoming: "queue.Queue[Any]" = queue.Queue()
        self.stream = rpc.ConsumerStub(gateway.channel).Consume(self._requests(), metadata=gateway.metadata)
        threading.Thread(target=self._read, daemon=True).start()
        first = self.incoming.get(timeout=30)
        if isinstance(first, Failure):
            raise first
        if first is None or first.WhichOneof("response") != "joined":
            raise Failure("unexpected", "no joined response")

    def _requests(self) -> Iterator[pb.ConsumeRequest]:
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item

    def _read(self) -> None:
        try:
            for response in self.stream:
                self.incoming.put(response)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.incoming.put(Failure(kind_of(error), error.details() or ""))
        self.incoming.put(None)

    def settle(self, delivery_id: int, outcome: int, reason: str = "", delay: Optional[float] = None) -> None:
        settle = pb.Settle(delivery_id=delivery_id, outcome=outcome, reason=reason)
        if delay is not None:
            settle.delay.CopyFrom(duration(delay))
        self.requests.put(pb.ConsumeRequest(settle=settle))

    def close(self) -> None:
        """Ends the request stream: the gateway closes the member (commits)."""
        self.requests.put(None)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                item = self.incoming.get(timeout=1)
            except queue.Empty:
                continue
            if item is None or isinstance(item, Failure):
                return
        self.stream.cancel()


class Gateway:
    def __init__(self) -> None:
        self.channel: Optional[grpc.Channel] = None
        self.metadata: List[Any] = []
        self.joined: Dict[str, Session] = {}

    def call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self.metadata, timeout=60)
        except grpc.RpcError as error:
            raise Failure(kind_of(error), error.details() or "")

    def perform(self, op: Dict[str, Any]) -> Dict[str, Any]:
        kind = op["op"]
        if kind == "connect":
            self.channel = grpc.insecure_channel(op["url"])
            grpc.channel_ready_future(self.channel).result(timeout=10)
            self.metadata = [("authorization", f"Bearer {op['token']}")]
            return {}
        assert self.channel
        stations = rpc.StationsStub(self.channel)
        if kind in ("create_station", "update_station"):
            config = pb.StationConfig(
                partitions=op.get("partitions", 0),
                max_deliveries=op.get("max_deliveries", 0),
                schema=op.get("schema", ""),
                replicas=op.get("replicas", 0),
            )
            contract_fields(config, "StationConfig", op.get("settings", {}))
            request = pb.CreateStationRequest(name=op["name"], config=config, update=kind == "update_station")
            s = self.call(stations.CreateStation, request)
            return {"name": s.name, "partitions": s.config.partitions, "max_deliveries": s.config.max_deliveries}
        if kind == "delete_key":
            self.call(rpc.ProducerStub(self.channel).Delete, pb.DeleteRequest(station=op["station"], key=op["key"]))
            return {}
        if kind == "station_stats":
            s = self.call(stations.GetStationStats, pb.GetStationStatsRequest(station=op["station"]))
            return {"partitions": len(s.partitions), "messages": sum(p.messages for p in s.partitions),
                    "dead_letters": s.dead_letters, "state_keys": s.state_keys if s.HasField("state_keys") else None}
        if kind == "purge_dead_letters":
            r = self.call(rpc.DeadLettersStub(self.channel).PurgeDeadLetters, pb.PurgeDeadLettersRequest(station=op["station"]))
            return {"purged": r.purged}
        if kind == "groups":
            groups = self.call(stations.ListGroups, pb.ListGroupsRequest(station=op["station"])).groups
            return {"names": [g.group for g in groups], "members": sum(len(g.members) for g in groups),
                    "lag": sum(p.lag for g in groups for p in g.partitions)}
        if kind == "latest":
            r = self.call(stations.GetLatest, pb.GetLatestRequest(station=op["station"], key=op["key"]))
            return {"payload": r.entry.payload.decode() if r.HasField("entry") else None}
        if kind == "snapshot":
            try:
                stream = stations.Snapshot(pb.SnapshotRequest(station=op["station"]), metadata=self.metadata, timeout=60)
                return {"entries": {e.key: e.payload.decode() for e in stream}}
            except grpc.RpcError as error:
                raise Failure(kind_of(error), error.details() or "")
        if kind == "delete_station":
            self.call(stations.DeleteStation, pb.DeleteStationRequest(name=op["name"]))
            return {}
        if kind == "station":
            s = self.call(stations.GetStation, pb.GetStationRequest(name=op["name"]))
            return {"messages": s.messages, "dead_letters": s.dead_letters}
        if kind == "send":
            return self.send(op)
        if kind == "join":
            self.joined[op["as"]] = self.session(op)
            return {}
        if kind == "consume":
            return self.consume(op)
        if kind == "dead_letters":
            deadline = time.monotonic() + op.get("timeout", 0)
            stub = rpc.DeadLettersStub(self.channel)
            while True:
                letters = self.call(stub.ListDeadLetters, pb.ListDeadLettersRequest(station=op["station"])).dead_letters
                if len(letters) >= op.get("at_least", 0) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)  # dead letters are written as the last nack is processed
            return {
                "dead_letters": [
                    {
                        "sequence": d.sequence,
                        "origin_station": d.origin_station,
                        "origin_partition": d.origin_partition,
                        "origin_sequence": d.origin_sequence,
                        "group": d.group,
                        "deliveries": d.deliveries,
                        "last_error": d.last_error,
                        "key": d.key or None,
                        "payload_b64": base64.b64encode(d.payload).decode(),
                    }
                    for d in letters
                ]
            }
        if kind == "replay_dead_letter":
            r = self.call(
                rpc.DeadLettersStub(self.channel).ReplayDeadLetter,
                pb.ReplayDeadLetterRequest(station=op["station"], sequence=op["sequence"]),
            )
            return {"partition": r.partition, "sequence": r.sequence}
        if kind == "register_schema":
            v = self.call(
                rpc.SchemasStub(self.channel).RegisterSchema,
                pb.RegisterSchemaRequest(
                    name=op["name"], format=FORMATS[op["format"]], source=op["source"],
                    message_type=op.get("message_type", ""),
                ),
            )
            return {"version": v.version}
        raise Failure("unexpected", f"the gateway runner has no operation {kind}")

    def send(self, op: Dict[str, Any]) -> Dict[str, Any]:
        if "producer" in op:
            raise Failure("unexpected", "named producers do not exist over gRPC")
        messages = list(op.get("messages", [])) + (generated(op["generate"]) if "generate" in op else [])
        if any("value" in m for m in messages):
            raise Failure("unexpected", "the gateway carries bytes; encoding is the client's")

        def requests() -> Iterator[pb.SendRequest]:
            for m in messages:
                payload = base64.b64decode(m["payload_b64"]) if "payload_b64" in m else str(m["payload"]).encode()
                yield pb.SendRequest(
                    station=op["station"],
                    message=pb.OutgoingMessage(
                        payload=payload, key=m.get("key", ""), headers=m.get("headers", {}), msg_id=m.get("msg_id", "")
                    ),
                )

        receipts = []
        try:
            for result in rpc.ProducerStub(self.channel).SendStream(requests(), metadata=self.metadata, timeout=120):
                if result.WhichOneof("result") == "error":
                    raise Failure(result.error.kind, result.error.message)
                r = result.receipt
                receipts.append({"partition": r.partition, "sequence": r.sequence, "duplicate": r.duplicate, "msg_id": r.msg_id})
        except grpc.RpcError as error:
            raise Failure(kind_of(error), error.details() or "")
        return {"receipts": receipts}

    def session(self, op: Dict[str, Any]) -> Session:
        try:
            return Session(self, op)
        except queue.Empty:
            raise Failure("unexpected", "the gateway did not answer the join")

    def consume(self, op: Dict[str, Any]) -> Dict[str, Any]:
        session = self.joined.pop(op["consumer"]) if "consumer" in op else self.session(op)
        nack = {r["payload"]: r for r in op.get("nack", [])}
        fail = set(op.get("fail", []))
        until = set(op.get("until_payloads", []))
        count, min_deliveries = op.get("count", 0), op.get("min_deliveries", 0)
        crash_after = op.get("crash_after")
        records: List[Dict[str, Any]] = []
        second_settle: Optional[str] = None  # the error kind of acking a message twice
        stashed: List[Any] = []  # responses read while waiting for a refusal
        acked = 0
        started = time.monotonic()
        deadline = started + op.get("timeout", 30)
        timed_out = False

        def finished() -> bool:
            return acked >= count and not until and len(records) >= min_deliveries

        while not finished():
            try:
                item = stashed.pop(0) if stashed else session.incoming.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                timed_out = True
                break
            if isinstance(item, Failure):
                raise item
            if item is None:
                raise Failure("unexpected", "the consume stream ended")
            if item.WhichOneof("response") == "error":
                raise Failure(item.error.kind, item.error.message)
            m = item.message
            text = m.payload.decode("utf-8", "replace")
            record = {
                "payload_b64": base64.b64encode(m.payload).decode(),
                "key": m.key or None,
                "headers": sorted([k, v] for k, v in m.headers.items()),
                "msg_id": m.msg_id or None,
                "partition": m.partition,
                "sequence": m.sequence,
                "deliveries": m.deliveries,
                "t_ms": round((time.monotonic() - started) * 1000),
            }
            rule = nack.get(text)
            if text in fail:
                records.append({**record, "action": "nack"})
                session.settle(m.delivery_id, pb.Settle.NACK, reason=f"rejected by handler: {text}")
            elif rule and m.deliveries <= rule["times"]:
                records.append({**record, "action": "nack"})
                session.settle(m.delivery_id, pb.Settle.NACK, delay=rule["delay"])
            else:
                records.append({**record, "action": "ack"})
                session.settle(m.delivery_id, pb.Settle.ACK)
                if op.get("settle_twice"):
                    session.settle(m.delivery_id, pb.Settle.ACK)
                    while second_settle is None:  # the refusal comes back on the stream
                        reply = session.incoming.get(timeout=10)
                        if reply is not None and not isinstance(reply, Failure) and reply.WhichOneof("response") == "error":
                            second_settle = reply.error.kind
                        else:
                            stashed.append(reply)
                acked += 1
                until.discard(text)
                if crash_after is not None and acked >= crash_after:
                    time.sleep(op.get("crash_wait", 0))  # the last acks reach the gateway
                    answer({"ok": {"messages": records, "timed_out": False}})
                    os._exit(0)  # a crash: the stream breaks, nothing is closed
            if op.get("concurrency", 1) > 1:
                time.sleep(random.random() / 1000)
        session.close()
        result: Dict[str, Any] = {"messages": records, "timed_out": timed_out}
        if op.get("settle_twice"):
            result["second_settle"] = second_settle
        return result


def main() -> None:
    gateway = Gateway()
    for line in sys.stdin:
        if not line.strip():
            continue
        op = json.loads(line)
        try:
            answer({"ok": gateway.perform(op)})
        except Failure as failure:
            answer({"error": {"kind": failure.kind, "message": str(failure)}})
        except Exception as error:  # reported, so the referee shows it as a miss
            answer({"error": {"kind": "unexpected", "message": f"{type(error).__name__}: {error}"}})
    for session in gateway.joined.values():
        session.close()
    if gateway.channel:
        gateway.channel.close()


if __name__ == "__main__":
    main()
