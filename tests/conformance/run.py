#!/usr/bin/env python3
"""The conformance referee: runs every scenario in every language and the
interop matrix, then prints a scenario x language matrix.

Scenarios are data (scenarios/*.json). Each language has a small runner that
reads one operation per line on stdin (JSON) and answers one line on stdout:
{"ok": {...}} or {"error": {"kind": ..., "message": ...}}. Runners only carry
operations out and report what they saw; every judgement is made here, once,
so a language cannot pass by judging itself leniently. See README.md.

Usage: run.py --lang NAME=COMMAND [--lang ...] [--only SCENARIO] [--no-interop]
Needs NATS_SERVER_BIN (2.12 or newer), NATS_SERVER_OLD_BIN (older than 2.12)
and GATEWAY_BIN when a "gateway" language is given.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
NAMESPACE = "conformance"
GATEWAY_TOKEN = "conformance-token"
STEP_TIMEOUT = 180.0


# ------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # the process is still starting; poll its port
    raise RuntimeError(f"{what} did not listen on {port} within 20 s")


class Server:
    """One nats-server on a free loopback port, in its own directory."""

    def __init__(self, binary: str, config: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jst-conf-"))
        self.port = free_port()
        conf = self.dir / "server.conf"
        conf.write_text(
            f'listen: 127.0.0.1:{self.port}\njetstream {{ store_dir: "{self.dir / "store"}" }}\n{config}\n'
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf), "-l", str(self.dir / "server.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, f"nats-server {binary}", self.proc)
        self.url = f"nats://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Servers:
    def __init__(self, with_gateway: bool) -> None:
        binary = os.environ["NATS_SERVER_BIN"]
        self.binary = binary
        self.main = Server(binary)
        self.auth = Server(binary, "authorization { users: [ { user: app, password: s3cret } ] }")
        self.small = Server(binary, "max_payload: 2048")
        self.old = Server(os.environ["NATS_SERVER_OLD_BIN"])
        self.closed_url = f"nats://127.0.0.1:{free_port()}"
        # One file that is not a creds file, for every scenario of the run;
        # it lives in the main server's directory, removed with it.
        self.garbage_creds = str(self.main.dir / "garbage.creds")
        Path(self.garbage_creds).write_text("this is not a creds file\n")
        self.disposable: Optional[Server] = None
        self.gateway: Optional[subprocess.Popen] = None
        self.gateway_addr = ""
        if with_gateway:
            port = free_port()
            self.gateway = subprocess.Popen(
                [
                    os.environ["GATEWAY_BIN"],
                    "--nats-url", self.main.url,
                    "--listen", f"127.0.0.1:{port}",
                    "--token", f"{GATEWAY_TOKEN}={NAMESPACE}",
                    "--log", "warn",
                ]
            )
            wait_port(port, "jetstation-gateway", self.gateway)
            self.gateway_addr = f"127.0.0.1:{port}"

    def fresh_disposable(self) -> Server:
        if self.disposable:
            self.disposable.stop()
        self.disposable = Server(self.binary)
        return self.disposable

    def url(self, name: str) -> str:
        if name == "closed":
            return self.closed_url
        if name == "disposable":
            assert self.disposable, "scenario must start the disposable server first"
            return self.disposable.url
        return getattr(self, name).url

    def stop(self) -> None:
        if self.gateway and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(10)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
        for s in (self.main, self.auth, self.small, self.old, self.disposable):
            if s:
                s.stop()


# ------------------------------------------------------------------ runners


class RunnerDied(Exception):
    pass


class Runner:
    """One runner process; operations go in on stdin, answers come out on stdout."""

    def __init__(self, lang: str, command: List[str], log_dir: Path) -> None:
        self.lang = lang
        self.command = command
        self.log = open(log_dir / f"{lang}.log", "ab")
        self.proc: Optional[subprocess.Popen] = None
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()

    def _start(self) -> None:
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=str(HERE.parent.parent),
        )
        lines = self.lines
        stdout = self.proc.stdout

        def read() -> None:
            assert stdout is not None
            for raw in stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def call(self, op: Dict[str, Any]) -> Dict[str, Any]:
        if not self.alive():
            self._start()
        assert self.proc and self.proc.stdin
        self.log.write(f"--> {json.dumps(op)[:2000]}\n".encode())
        self.log.flush()
        try:
            self.proc.stdin.write((json.dumps(op) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise RunnerDied(f"{self.lang} runner exited before {op['op']}")
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RunnerDied(f"{self.lang} runner gave no answer to {op['op']} in {STEP_TIMEOUT:.0f} s")
            if line is None:
                raise RunnerDied(f"{self.lang} runner exited during {op['op']} (see its log)")
            line = line.strip()
            if not line.startswith("{"):
                continue  # a stray print from a library; answers are JSON objects
            self.log.write(f"<-- {line[:2000]}\n".encode())
            self.log.flush()
            return json.loads(line)

    def wait_exit(self, seconds: float = 20) -> None:
        if self.proc:
            try:
                self.proc.wait(seconds)
            except subprocess.TimeoutExpired:
                self.stop()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                assert self.proc.stdin
                self.proc.stdin.close()
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# ------------------------------------------------------------------ checks


class Miss(Exception):
    pass


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def generated(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The messages a `generate` spec stands for; every runner builds the same."""
    keys = spec.get("keys", 0)
    prefix = spec.get("prefix", "m-")
    size = spec.get("size", 0)  # padded with "." to this many bytes
    return [
        {"payload": f"{prefix}{i}".ljust(size, "."), **({"key": f"k-{i % keys}"} if keys else {})}
        for i in range(spec["count"])
    ]


def user_headers(headers: List[List[str]]) -> Dict[str, str]:
    reserved = ("nats-", "jst-")
    return {n: v for n, v in headers if not n.lower().startswith(reserved)}


class Context:
    """What one scenario run in one language has seen so far."""

    def __init__(self, lang: str, scenario: str, garbage_creds: str) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.vars = {"lang": lang, "scenario": scenario, "run": suffix}
        self.sent: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        self.receipts: Dict[str, Dict[str, Dict[str, Any]]] = defaultdict(dict)
        self.results: Dict[str, Dict[str, Any]] = {}
        self.skipped: List[str] = []
        # Values a step names with "$name" instead of a unique station name:
        # moments marked by `{"do": "mark_time", "as": name}` (RFC 3339), and
        # "$garbage_creds", a file that is not a creds file.
        self.bound: Dict[str, str] = {"garbage_creds": garbage_creds}

    def name(self, token: str) -> str:
        # "$station" -> "station-<scenario>-<lang>-<run>", unique per run.
        return f"{token[1:]}-{self.vars['scenario']}-{self.vars['lang']}-{self.vars['run']}".replace("_", "-")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$") and len(value) > 1:
            return self.bound.get(value[1:]) or self.name(value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            if "$acked_in" in value:  # {"$acked_in": step}: payloads that step acked
                return [m["payload"] for m in self.acked(value["$acked_in"])]
            if "$missing_after" in value:  # payloads sent to a station not acked in a step
                station, step = value["$missing_after"]
                done = {m["payload"] for m in self.acked(step)}
                return [m["payload"] for m in self.sent[self.resolve(station)] if m["payload"] not in done]
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def acked(self, step: str) -> List[Dict[str, Any]]:
        return [m for m in self.results[step]["messages"] if m["action"] == "ack"]


def text_of(m: Dict[str, Any]) -> str:
    return unb64(m["payload_b64"]).decode("utf-8", "replace")


def check_consume(ctx: Context, op: Dict[str, Any], result: Dict[str, Any], expect: Dict[str, Any]) -> None:
    messages = result["messages"]
    for m in messages:
        m["payload"] = text_of(m)
    acked = [m for m in messages if m["action"] == "ack"]
    station = op["station"]
    sent = ctx.sent[station]
    if result.get("timed_out") and not expect.get("may_time_out"):
        waiting = sorted(set(op.get("until_payloads", [])) - {m["payload"] for m in acked})
        raise Miss(
            f"consume timed out after {len(acked)} acks, {len(messages)} deliveries"
            + (f"; never acked: {waiting[:8]} ({len(waiting)})" if waiting else "")
        )
    if op.get("crash_after") and len(acked) < op["crash_after"]:
        raise Miss(f"the member crashed after {len(acked)} acks, expected {op['crash_after']}")
    if "second_settle" in expect and result.get("second_settle") != expect["second_settle"]:
        raise Miss(f"a second settle of one message gave {result.get('second_settle')!r}, expected {expect['second_settle']!r}")
    if "acked_count" in expect and len(acked) != expect["acked_count"]:
        raise Miss(f"acked {len(acked)} messages, expected {expect['acked_count']}")
    if "acked_payloads" in expect:
        got = sorted(m["payload"] for m in acked)
        want = sorted(expect["acked_payloads"])
        if got != want:
            raise Miss(f"acked payloads {got[:10]}..., expected {want[:10]}...")
    if expect.get("acked_all_sent"):
        got = sorted(m["payload"] for m in acked)
        want = sorted(m["payload"] for m in sent)
        if got != want:
            missing = sorted(set(want) - set(got))[:5]
            extra = len(got) - len(set(got))
            raise Miss(f"acked {len(got)} of {len(want)} sent; missing {missing}, {extra} twice")
    if "union_with" in expect:
        before = {m["payload"] for m in ctx.acked(expect["union_with"])}
        now = {m["payload"] for m in acked}
        missing = sorted({m["payload"] for m in sent} - before - now)
        if missing:
            raise Miss(f"{len(missing)} messages never acked across the crash, e.g. {missing[:5]}")
    if "disjoint_with" in expect:  # exactly once: nothing acked there is handled again here
        before = {m["payload"] for m in ctx.acked(expect["disjoint_with"])}
        again = sorted(before & {m["payload"] for m in messages})
        if again:
            raise Miss(f"{len(again)} messages acked before the crash were handled again, e.g. {again[:5]}")
    if expect.get("per_key_order"):
        order = {m["payload"]: i for i, m in enumerate(sent)}
        by_key: Dict[str, List[int]] = defaultdict(list)
        for m in acked:
            by_key[m.get("key") or ""].append(order.get(m["payload"], -1))
        for key, seq in by_key.items():
            if seq != sorted(seq):
                raise Miss(f"key {key!r} acked out of order: {seq[:12]}")
        # Handled (not only acked) in order: no delivery of a key while an
        # earlier message of the key was still unsettled is checked by the
        # runner reporting handling order, which is the ack order here.
    for payload, want in expect.get("deliveries_of", {}).items():
        got = [m["deliveries"] for m in messages if m["payload"] == payload]
        if got != want:
            raise Miss(f"{payload!r} delivered as {got}, expected deliveries {want}")
    gap = expect.get("min_gap_ms")
    if gap:
        times = [m["t_ms"] for m in messages if m["payload"] == gap["payload"]]
        gaps = [b - a for a, b in zip(times, times[1:])]
        if not gaps or min(gaps) < gap["ms"]:
            raise Miss(f"redelivery gaps {gaps} ms, expected >= {gap['ms']} ms")
    for m in acked:
        want = next((s for s in sent if s["payload"] == m["payload"]), None)
        if want and want.get("headers") and user_headers(m["headers"]) != want["headers"]:
            raise Miss(f"{m['payload']!r} headers {user_headers(m['headers'])}, sent {want['headers']}")
        if want and want.get("key") != (m.get("key") or None):
            raise Miss(f"{m['payload']!r} key {m.get('key')!r}, sent {want.get('key')!r}")
        if want and want.get("msg_id") and m.get("msg_id") != want["msg_id"]:
            raise Miss(f"{m['payload']!r} msg_id {m.get('msg_id')!r}, sent {want['msg_id']!r}")
    if "first_payloads" in expect:
        got = [m["payload"] for m in acked][: len(expect["first_payloads"])]
        if got != expect["first_payloads"]:
            raise Miss(f"first acked {got}, expected {expect['first_payloads']}")


def check_dead_letters(ctx: Context, op: Dict[str, Any], result: Dict[str, Any], expect: Dict[str, Any]) -> None:
    letters = result["dead_letters"]
    want = expect["dead_letters"]
    if len(letters) != len(want):
        raise Miss(f"{len(letters)} dead letters, expected {len(want)}")
    for got, w in zip(letters, want):
        w = ctx.resolve(w)
        payload = unb64(got["payload_b64"]).decode("utf-8", "replace")
        if payload != w["payload"]:
            raise Miss(f"dead letter payload {payload!r}, expected {w['payload']!r}")
        for field in ("origin_station", "group", "deliveries", "key"):
            if field in w and got.get(field) != w[field]:
                raise Miss(f"dead letter {field} {got.get(field)!r}, expected {w[field]!r}")
        if w.get("last_error_contains") and w["last_error_contains"] not in got["last_error"]:
            raise Miss(f"dead letter last_error {got['last_error']!r} lacks {w['last_error_contains']!r}")
        receipt = ctx.receipts[op["station"]].get(w["payload"])
        if receipt and (got["origin_partition"], got["origin_sequence"]) != (
            receipt["partition"],
            receipt["sequence"],
        ):
            raise Miss(
                f"dead letter origin {got['origin_partition']}/{got['origin_sequence']}, "
                f"sent to {receipt['partition']}/{receipt['sequence']}"
            )
    ctx.results.setdefault("_dead_letters", {})[op["station"]] = letters


def expand_send(ctx: Context, op: Dict[str, Any]) -> List[Dict[str, Any]]:
    messages = list(op.get("messages", []))
    if "generate" in op:
        messages += generated(op["generate"])
    # What a consumer will report as "payload" (UTF-8 text of the bytes).
    for m in messages:
        if "payload_b64" in m:
            m.setdefault("payload", unb64(m["payload_b64"]).decode("utf-8", "replace"))
        elif "value" in m:
            m.setdefault("payload", json.dumps(m["value"]))
    return messages


def run_scenario(scenario: Dict[str, Any], lang: str, runner: Runner, servers: Servers) -> Tuple[bool, str, List[str]]:
    ctx = Context(lang, scenario["name"], servers.garbage_creds)
    for index, raw in enumerate(scenario["steps"]):
        label = raw.get("id") or f"step {index + 1} ({raw.get('op') or raw.get('do')})"
        skip = raw.get("not_in", {}).get(lang)
        if skip:
            ctx.skipped.append(f"{label}: {skip}")
            continue
        try:
            if "do" in raw:
                do_action(raw, servers, runner, ctx)
                continue
            op = ctx.resolve({k: v for k, v in raw.items() if k not in ("expect", "id", "not_in")})
            if op["op"] == "connect":
                op = connect_op(op, lang, servers)
            if op["op"] == "send":
                expanded = expand_send(ctx, op)
            if op["op"] == "consume" and op.get("crash_after") is not None:
                # A crash step ends by crashing: without a count a runner
                # would have nothing to wait for and answer at once.
                op.setdefault("count", 10**9)
            if op["op"] == "replay_dead_letter":
                op["sequence"] = ctx.results["_dead_letters"][op["station"]][op.pop("index", 0)]["sequence"]
            answer = runner.call(op)
            expect = raw.get("expect", {})
            if op["op"] in ("station_stats", "groups") and "fields" in expect:
                # Commits and member announcements reach the broker soon,
                # not at once: ask again until it holds or the time is up.
                deadline = time.monotonic() + op.get("timeout", 0)
                while time.monotonic() < deadline and any(
                    answer.get("ok", {}).get(f) != ctx.resolve(w) for f, w in expect["fields"].items()
                ):
                    time.sleep(0.1)  # between two reads of the stats
                    answer = runner.call(op)
            if "entries" in expect:
                # The broker fills a state view by itself, soon after the
                # writes: ask again until it holds or the step's time is up.
                deadline = time.monotonic() + op.get("timeout", 0)
                while answer.get("ok", {}).get("entries") != expect["entries"] and time.monotonic() < deadline:
                    time.sleep(0.1)  # between two reads of the view
                    answer = runner.call(op)
            if "error" in expect:
                got = answer.get("error", {}).get("kind")
                if got != expect["error"]:
                    detail = answer.get("error", {}).get("message") if "error" in answer else "no error"
                    raise Miss(f"{label}: expected error {expect['error']}, got {got} ({detail})")
                continue
            if "error" in answer:
                raise Miss(f"{label}: {answer['error']['kind']}: {answer['error']['message']}")
            result = answer["ok"]
            ctx.results[raw.get("id", label)] = result
            if op["op"] == "send":
                receipts = result["receipts"]
                if len(receipts) != len(expanded):
                    raise Miss(f"{label}: {len(receipts)} receipts for {len(expanded)} messages")
                for m, r in zip(expanded, receipts):
                    if not r["duplicate"]:
                        ctx.sent[op["station"]].append(m)
                    ctx.receipts[op["station"]].setdefault(m["payload"], r)
                if "duplicates" in expect and [r["duplicate"] for r in receipts] != expect["duplicates"]:
                    raise Miss(f"{label}: duplicate flags {[r['duplicate'] for r in receipts]}")
            elif op["op"] == "consume":
                check_consume(ctx, op, result, expect)
            elif op["op"] == "snapshot" and "entries" in expect:
                if result["entries"] != expect["entries"]:
                    raise Miss(f"{label}: the state view holds {result['entries']}, expected {expect['entries']}")
            elif op["op"] == "dead_letters":
                check_dead_letters(ctx, op, result, expect)
            for field, want in expect.get("fields", {}).items():
                if result.get(field) != ctx.resolve(want):
                    raise Miss(f"{label}: {field} = {result.get(field)!r}, expected {want!r}")
        except Miss as miss:
            text = str(miss)
            return False, text if text.startswith(label) else f"{label}: {text}", ctx.skipped
        except RunnerDied as died:
            return False, f"{label}: {died}", ctx.skipped
        if raw.get("op") == "consume" and raw.get("crash_after"):
            runner.wait_exit()
    return True, "", ctx.skipped


def connect_op(op: Dict[str, Any], lang: str, servers: Servers) -> Dict[str, Any]:
    server = op.pop("server", "main")
    if lang == "gateway":
        op["url"] = servers.gateway_addr
        op["token"] = GATEWAY_TOKEN
    else:
        op.setdefault("url", servers.url(server))  # a step may give a bad URL on purpose
        op["namespace"] = NAMESPACE
    return op


def do_action(step: Dict[str, Any], servers: Servers, runner: Runner, ctx: Context) -> None:
    if step["do"] == "start_disposable":
        servers.fresh_disposable()
    elif step["do"] == "kill_disposable":
        assert servers.disposable
        servers.disposable.kill()
    elif step["do"] == "sleep":  # a scenario waits for time-based broker behaviour
        time.sleep(step["seconds"])
    elif step["do"] == "mark_time":  # "$name" then stands for this moment (UTC, RFC 3339)
        now = datetime.datetime.now(datetime.timezone.utc)
        ctx.bound[step["as"]] = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    else:
        raise Miss(f"unknown action {step['do']}")


# ------------------------------------------------------------------ interop

INTEROP_SCHEMA = """syntax = "proto3";
package hr;
message Employee { string id = 1; string name = 2; double salary = 3; repeated string teams = 4; }
"""
INTEROP_VALUE = {"id": "e-7", "name": "Zoë Ødegaard", "salary": 5123.5, "teams": ["payroll", "ops"]}


def interop(langs: Dict[str, Runner], servers: Servers) -> Tuple[Dict[Tuple[str, str], str], List[str]]:
    """Every language produces the same messages; every language consumes
    every producer's messages. Cells compare payload bytes, key, headers,
    msg id and (where the consumer decodes) the Protobuf value."""
    run = uuid.uuid4().hex[:6]
    schema = f"employee-pb-{run}"
    binary = bytes(range(256))
    cells: Dict[Tuple[str, str], str] = {}
    notes: List[str] = []
    ready: Dict[str, Tuple[str, List[Dict[str, Any]]]] = {}
    first = True
    for producer, runner in langs.items():
        station = f"interop-{producer}-{run}"
        messages: List[Dict[str, Any]] = [
            {"payload": "hello from " + producer, "key": "emp-1", "headers": {"X-Trace": f"t-{producer}", "X-Unicode": "é✓"}, "msg_id": f"id-{producer}-1"},
            {"payload_b64": b64(binary), "key": "emp-2", "headers": {"Content-Type": "application/octet-stream"}},
        ]
        try:
            check_ok(runner.call(connect_op({"op": "connect"}, producer, servers)))
            if first:  # one registration, shared by every language through the registry
                check_ok(runner.call({"op": "register_schema", "name": schema, "format": "protobuf", "source": INTEROP_SCHEMA, "message_type": "hr.Employee"}))
                first = False
            check_ok(runner.call({"op": "create_station", "name": station, "partitions": 2}))
            if producer != "gateway":
                messages.append({"value": INTEROP_VALUE, "schema": schema, "key": "emp-3"})
            else:
                notes.append("gateway produces no Protobuf row: it carries bytes; gRPC clients encode with their own generated code")
            answer = check_ok(runner.call({"op": "send", "station": station, "messages": messages}))
            if len(answer["receipts"]) != len(messages):
                raise Miss("missing receipts")
            ready[producer] = (station, messages)
        except (Miss, RunnerDied) as error:
            for consumer in langs:
                cells[(producer, consumer)] = f"produce failed: {error}"
    references: Dict[str, Dict[str, Any]] = {}
    for consumer, runner in langs.items():
        try:
            check_ok(runner.call(connect_op({"op": "connect"}, consumer, servers)))
        except (Miss, RunnerDied) as error:
            for producer in ready:
                cells[(producer, consumer)] = f"connect failed: {error}"
            continue
        for producer, (station, messages) in ready.items():
            try:
                if not runner.alive():  # restarted after a failure: connect again
                    check_ok(runner.call(connect_op({"op": "connect"}, consumer, servers)))
                decode = schema if consumer != "gateway" else None
                answer = check_ok(runner.call({
                    "op": "consume", "station": station, "group": f"c-{consumer}", "count": len(messages),
                    "timeout": 30, **({"decode": decode} if decode else {}),
                }))
                got = sorted(answer["messages"], key=lambda m: m["key"] or "")
                if len(got) != len(messages):
                    raise Miss(f"received {len(got)} of {len(messages)}")
                for m, want in zip(got, messages):
                    if "value" in want:
                        if decode and json.loads(m.get("decoded") or "null") != INTEROP_VALUE:
                            raise Miss(f"decoded {m['decoded']} != {INTEROP_VALUE}")
                    else:
                        payload = unb64(m["payload_b64"])
                        expected = unb64(want["payload_b64"]) if "payload_b64" in want else want["payload"].encode()
                        if payload != expected:
                            raise Miss(f"payload bytes differ for key {want['key']}")
                    if m["key"] != want["key"]:
                        raise Miss(f"key {m['key']!r} != {want['key']!r}")
                    if user_headers(m["headers"]) != want.get("headers", {}):
                        raise Miss(f"headers {user_headers(m['headers'])} != {want.get('headers', {})}")
                    if want.get("msg_id") and m["msg_id"] != want["msg_id"]:
                        raise Miss(f"msg_id {m['msg_id']!r} != {want['msg_id']!r}")
                # Every consumer must see the very same bytes and the same full
                # header set (jetstation's own headers included).
                fingerprint = {m["key"]: (m["payload_b64"], sorted(map(tuple, m["headers"]))) for m in got}
                ref = references.setdefault(producer, fingerprint)
                if ref != fingerprint:
                    raise Miss("bytes or headers differ from what another language received")
                cells[(producer, consumer)] = "ok"
            except (Miss, RunnerDied) as error:
                cells[(producer, consumer)] = str(error)
    return cells, notes


def check_ok(answer: Dict[str, Any]) -> Dict[str, Any]:
    if "error" in answer:
        raise Miss(f"{answer['error']['kind']}: {answer['error']['message']}")
    return answer["ok"]


# ------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lang", action="append", default=[], help="NAME=COMMAND")
    parser.add_argument("--only", action="append", default=[], help="scenario name")
    parser.add_argument("--no-interop", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    scenarios = [json.loads(p.read_text()) for p in sorted((HERE / "scenarios").glob("*.json"))]
    if args.only:
        scenarios = [s for s in scenarios if s["name"] in args.only]
    log_dir = Path(os.environ.get("CONFORMANCE_LOGS", tempfile.mkdtemp(prefix="jst-conformance-logs-")))
    log_dir.mkdir(parents=True, exist_ok=True)
    langs: Dict[str, Runner] = {}
    for spec in args.lang:
        name, command = spec.split("=", 1)
        langs[name] = Runner(name, shlex.split(command), log_dir)
    servers = Servers(with_gateway="gateway" in langs)
    results: Dict[Tuple[str, str], Tuple[bool, str, List[str]]] = {}
    try:
        for scenario in scenarios:
            for lang, runner in langs.items():
                t0 = time.monotonic()
                results[(scenario["name"], lang)] = run_scenario(scenario, lang, runner, servers)
                runner.stop()
                print(f"  {scenario['name']:<28} {lang:<8} {'pass' if results[(scenario['name'], lang)][0] else 'FAIL'} "
                      f"({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
        cells, notes = ({}, []) if args.no_interop else interop(langs, servers)
    finally:
        for runner in langs.values():
            runner.stop()
        servers.stop()

    names = list(langs)
    width = max([len(s["name"]) for s in scenarios] + [len("scenario")]) + 2
    print(f"\nConformance: scenario x language (logs: {log_dir})")
    print("scenario".ljust(width) + "".join(n.ljust(10) for n in names))
    failures: List[str] = []
    footnotes: List[str] = []
    for s in scenarios:
        row = s["name"].ljust(width)
        for lang in names:
            ok, why, skipped = results[(s["name"], lang)]
            mark = "pass" if ok else "FAIL"
            if skipped:
                mark += f" ({len(skipped)} n/a)"
                footnotes += [f"{s['name']} / {lang}: {item}" for item in skipped]
            row += mark.ljust(10 if len(mark) < 10 else len(mark) + 1)
            if not ok:
                failures.append(f"{s['name']} / {lang}: {why}")
        print(row)
    if cells:
        print("\nInterop: produced in (row) x consumed in (column)")
        print("producer".ljust(width) + "".join(n.ljust(10) for n in names))
        for p in names:
            row = p.ljust(width)
            for c in names:
                ok = cells.get((p, c)) == "ok"
                row += ("ok" if ok else "FAIL").ljust(10)
                if not ok:
                    failures.append(f"interop {p} -> {c}: {cells.get((p, c), 'not run')}")
            print(row)
        footnotes += [f"interop: {n}" for n in sorted(set(notes))]
    if footnotes:
        print("\nNot applicable (steps left out, with the reason):")
        grouped: Dict[str, List[str]] = defaultdict(list)
        for f in footnotes:
            where, _, reason = f.partition(": step ")
            if reason:
                step, _, why = reason.partition(": ")
                grouped[f"{where}: {why}"].append(step.split(" ")[0])
            else:
                grouped[f].append("")
        for what, steps in grouped.items():
            numbers = ", ".join(s for s in steps if s)
            print(f"  {what}" + (f" (steps {numbers})" if numbers else ""))
    if failures:
        print("\nMisses:")
        for f in failures:
            print("  " + f)
    passed = sum(1 for r in results.values() if r[0]) + sum(1 for v in cells.values() if v == "ok")
    failed = len(results) + len(cells) - passed
    # The line scripts/test-summary.sh adds to the overall total.
    print(f"\nconformance: {passed} passed, {failed} failed in {time.monotonic() - started:.1f}s")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
