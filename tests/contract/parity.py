#!/usr/bin/env python3
"""Checks every binding's public surface against contract/jetstation.json.

Each language is read where its surface is declared for its users: the
Python type stubs and facade, the Node type declarations (generated from the
Rust glue, and the facade's), the generated Swift bindings and the Swift
wrapper, and the gateway's .proto. Every option, record field, operation,
vocabulary word and error kind of the contract must be there, spelt the
language's way, unless the contract says why not (`not_applicable`).

    python3 tests/contract/parity.py            # every language
    python3 tests/contract/parity.py --lang swift

Prints what is missing per language and exits 1 if anything is.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Set

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = json.loads((ROOT / "contract" / "jetstation.json").read_text())


def read(path: Path) -> str:
    """Every surface file is read here (the self-test edits what it returns)."""
    return path.read_text()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def pascal(name: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in name.split("_"))


class Surface:
    """What one language declares: record fields and class members by name."""

    def __init__(self) -> None:
        self.records: Dict[str, Set[str]] = {}
        self.members: Dict[str, Set[str]] = {}
        self.words: Set[str] = set()  # vocabulary words and error kinds, as written

    def add(self, table: Dict[str, Set[str]], name: str, items: Set[str]) -> None:
        table.setdefault(name, set()).update(items)


# --- Python -------------------------------------------------------------------


def python_surface() -> Surface:
    s = Surface()
    pkg = ROOT / "bindings/python/python/jetstation"
    for path in (pkg / "_native.pyi", pkg / "__init__.py"):
        tree = ast.parse(read(path))
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                names = set()
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        names.add(item.target.id)
                s.add(s.members, node.name, names)
                s.add(s.records, node.name, names)
            elif isinstance(node, ast.FunctionDef) and node.name == "connect" and path.suffix == ".pyi":
                s.add(s.records, "ConnectOptions", {a.arg for a in node.args.kwonlyargs})
    # Options are keyword arguments parsed by the glue: read the accepted names.
    glue = {
        "StationConfig": ("client.rs", "fn station_config"),
        "ProducerOptions": ("producer.rs", "fn producer_options"),
        "ConsumerOptions": ("consumer.rs", "fn consumer_options"),
    }
    for record, (file, start) in glue.items():
        text = read(ROOT / "bindings/python/src" / file)
        body = text[text.index(start):]
        body = body[: body.index("\n}\n")]
        s.add(s.records, record, set(re.findall(r'^\s*"([a-z_]+)" =>', body, re.M)))
    s.words |= set(re.findall(r'kind = "([a-z_]+)"', read(pkg / "errors.py")))
    return s


# --- Node ---------------------------------------------------------------------


def ts_blocks(text: str) -> Dict[str, Set[str]]:
    """Members of each `interface X {…}` / `class X {…}` of a .d.ts file."""
    out: Dict[str, Set[str]] = {}
    for m in re.finditer(r"(?:interface|class)\s+(\w+)[^{]*\{(.*?)\n\}", text, re.S):
        names = set(re.findall(r"^\s*(?:static\s+|readonly\s+|get\s+|async\s+|\*\s*)*(\w+)\??\s*[(:<]", m.group(2), re.M))
        out.setdefault(m.group(1), set()).update(names)
    return out


def node_surface() -> Surface:
    s = Surface()
    for file in ("bindings/node/native/index.d.ts", "bindings/node/lib/index.d.ts"):
        for name, members in ts_blocks(read(ROOT / file)).items():
            s.add(s.records, name, members)
            s.add(s.members, name, members)
    s.words |= set(re.findall(r"static override readonly kind: ErrorKind = '([a-z_]+)'", read(ROOT / "bindings/node/ts/errors.ts")))
    return s


# --- Swift --------------------------------------------------------------------


def swift_blocks(text: str) -> Dict[str, Set[str]]:
    """Members of each struct/class/extension/protocol/enum of Swift source."""
    out: Dict[str, Set[str]] = {}
    pattern = re.compile(
        r"^(?:public |open |internal |private |fileprivate |final )*(struct|class|extension|protocol|enum|actor)\s+(\w+)[^{\n]*\{",
        re.M,
    )
    for m in pattern.finditer(text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[m.end(): i]
        name = re.sub(r"Protocol$", "", m.group(2))
        members = set(re.findall(r"\b(?:func|var|let)\s+`?(\w+)`?", body))
        members |= set(re.findall(r"\bcase\s+(\w+)", body))
        out.setdefault(name, set()).update(members)
    return out


def rust_blocks(text: str) -> Dict[str, Set[str]]:
    """Fields of each `pub struct X {…}` and methods of each `impl X {…}` of
    the uniffi glue, spelt as uniffi spells them in Swift (camelCase)."""
    out: Dict[str, Set[str]] = {}
    for m in re.finditer(r"^pub (?:struct|enum) (\w+)\s*\{(.*?)^\}", text, re.S | re.M):
        names = {camel(f) for f in re.findall(r"^\s+pub(?:\(crate\))? (\w+):", m.group(2), re.M)}
        names |= set(re.findall(r"^\s+([A-Z]\w*)\s*\{", m.group(2), re.M))  # enum cases
        out.setdefault(m.group(1), set()).update(names)
    for m in re.finditer(r"^impl (\w+) \{(.*?)^\}", text, re.S | re.M):
        names = {camel(f) for f in re.findall(r"^\s+pub (?:async )?fn (\w+)", m.group(2), re.M)}
        out.setdefault(m.group(1), set()).update(names)
    return out


def swift_surface() -> Surface:
    """The uniffi glue (the generated Swift is built from it, not committed)
    and the Swift extensions beside it."""
    s = Surface()
    for path in sorted((ROOT / "bindings/swift/ffi/src").glob("*.rs")):
        for name, members in rust_blocks(read(path)).items():
            s.add(s.records, name, members)
            s.add(s.members, name, members)
    for path in sorted((ROOT / "bindings/swift/Sources/Jetstation").glob("*.swift")):
        for name, members in swift_blocks(read(path)).items():
            s.add(s.members, name, members)
    s.words |= {k for k in CONTRACT["error_kinds"] if pascal(k) in s.members.get("JetstationError", set())}
    return s


# --- gateway ------------------------------------------------------------------


def gateway_surface() -> Surface:
    s = Surface()
    text = read(ROOT / "proto/jetstation/v1/jetstation.proto")
    messages: Dict[str, Set[str]] = {}
    for m in re.finditer(r"^(message|enum)\s+(\w+)\s*\{(\}|.*?^\})", text, re.S | re.M):
        body = m.group(3)
        fields = set(re.findall(r"^\s+(?:repeated\s+|optional\s+)?[\w.<>, ]+?\s+(\w+)\s*=\s*\d+;", body, re.M))
        fields |= set(re.findall(r"^\s+([A-Z_]+)\s*=\s*\d+;", body, re.M))
        messages[m.group(2)] = fields
    for name, fields in messages.items():
        s.add(s.records, name, fields)
    # A station carries its config as a nested message.
    s.add(s.records, "Station", messages.get("StationConfig", set()))
    s.add(s.members, "rpc", set(re.findall(r"rpc\s+(\w+)\s*\(", text)))
    s.add(s.members, "ConsumeRequest", messages.get("ConsumeRequest", set()))
    s.add(s.members, "Outcome", messages.get("Outcome", set()) | set(re.findall(r"^\s+([A-Z_]+) = \d+;", text, re.M)))
    s.words |= set(CONTRACT["error_kinds"])  # the gateway sends the core's kind names as they are
    return s


# --- spelling -----------------------------------------------------------------

Spell = Callable[[str, str, str], Set[str]]  # (record, field, type) -> accepted spellings


def spell_python(record: str, field: str, kind: str) -> Set[str]:
    if record == "ConsumerOptions" and field in ("start_sequence", "start_time"):
        return {"start"}  # one `start` takes "earliest", a sequence (int) or a datetime
    return {field}


def spell_node(record: str, field: str, kind: str) -> Set[str]:
    name = camel(field)
    if kind == "duration":
        return {name + "Ms"}
    if kind == "time":
        return {name, name + "Ms"}
    return {name}


def spell_swift(record: str, field: str, kind: str) -> Set[str]:
    return {camel(field)}


def spell_gateway(record: str, field: str, kind: str) -> Set[str]:
    return {field}


LANGS = {
    "python": (python_surface, spell_python, {"Delivery": "Delivery"}),
    "node": (node_surface, spell_node, {"Delivery": "Message"}),
    "swift": (swift_surface, spell_swift, {"Delivery": "Message"}),
    "gateway": (gateway_surface, spell_gateway, {"Delivery": "IncomingMessage", "ConsumerOptions": "Join"}),
}

# Operations as the gateway spells them: an rpc, a consume request, a settle outcome.
GATEWAY_OPS = {
    "Client.create_station": ("rpc", "CreateStation"),
    "Client.update_station": ("CreateStationRequest", "update"),
    "Client.station": ("rpc", "GetStation"),
    "Client.stations": ("rpc", "ListStations"),
    "Client.delete_station": ("rpc", "DeleteStation"),
    "Client.delete_group": ("rpc", "DeleteGroup"),
    "Client.latest": ("rpc", "GetLatest"),
    "Client.station_stats": ("rpc", "GetStationStats"),
    "Client.groups": ("rpc", "ListGroups"),
    "Client.dead_letters": ("rpc", "ListDeadLetters"),
    "Client.replay_dead_letter": ("rpc", "ReplayDeadLetter"),
    "Client.replay_dead_letters": ("rpc", "ReplayDeadLetters"),
    "Client.register_schema": ("rpc", "RegisterSchema"),
    "Client.schema": ("rpc", "GetSchema"),
    "Client.schemas": ("rpc", "ListSchemas"),
    "Client.set_schema_compatibility": ("rpc", "SetSchemaCompatibility"),
    "Client.delete_schema_version": ("rpc", "DeleteSchemaVersion"),
    "Producer.send": ("rpc", "Send"),
    "Producer.send_batch": ("rpc", "SendStream"),
    "Consumer.health": ("ConsumeRequest", "health"),
    "Delivery.ack": ("Outcome", "ACK"),
    "Delivery.nack": ("Outcome", "NACK"),
    "Delivery.term": ("Outcome", "TERM"),
    "Delivery.release": ("Outcome", "RELEASE"),
    "Delivery.in_progress": ("Outcome", "IN_PROGRESS"),
}


def check(lang: str) -> List[str]:
    surface_of, spell, renamed = LANGS[lang]
    surface = surface_of()
    na = CONTRACT.get("not_applicable", {}).get(lang, {})
    missing: List[str] = []
    for record, fields in CONTRACT["records"].items():
        if record in na:
            continue
        have = surface.records.get(renamed.get(record, record))
        if have is None:
            missing.append(f"record {record} (as {renamed.get(record, record)})")
            continue
        for field, kind in fields.items():
            if f"{record}.{field}" in na:
                continue
            accepted = spell(record, field, kind)
            if not accepted & have:
                missing.append(f"{record}.{field} (as {' or '.join(sorted(accepted))})")
    for cls, ops in CONTRACT["operations"].items():
        for op in ops:
            key = f"{cls}.{op}"
            if key in na or cls in na:
                continue
            if lang == "gateway":
                where, name = GATEWAY_OPS.get(key, ("rpc", pascal(op)))
                table = surface.records if where.endswith("Request") else surface.members
                if name not in table.get(where, set()):
                    missing.append(f"{key} (as {where} {name})")
                continue
            name = op if lang == "python" else camel(op)
            if lang == "python" and op == "next":
                name = "__anext__"  # `async for message in consumer`
            if name not in surface.members.get(renamed.get(cls, cls), set()):
                missing.append(f"{key} (as {renamed.get(cls, cls)}.{name})")
    for kind in CONTRACT["error_kinds"]:
        if kind not in surface.words:
            missing.append(f"error kind {kind}")
    telemetry = CONTRACT["telemetry"]
    if "telemetry" not in na:
        text = read(ROOT / telemetry["sources"][lang])
        for name in telemetry["metrics"] + telemetry["attributes"]:
            if f'"{name}"' not in text and f"'{name}'" not in text:
                missing.append(f"telemetry name {name} (in {telemetry['sources'][lang]})")
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", action="append", choices=sorted(LANGS))
    args = parser.parse_args()
    failed = False
    for lang in args.lang or list(LANGS):
        missing = check(lang)
        if missing:
            failed = True
            print(f"{lang}: {len(missing)} missing from the contract")
            for item in missing:
                print(f"  - {item}")
        else:
            print(f"{lang}: every option, field, operation, error kind and telemetry name of the contract")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
