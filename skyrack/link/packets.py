"""CCSDS space packets (CCSDS 133.0-B-2) with PUS-C headers (ECSS-E-ST-70-41C), built and read
with `spacepackets`: the edge between the on-board store and the radio.

Telemetry (TM), one APID per kind, each with its own 14-bit sequence count:

    APID 0x010  housekeeping frame        PUS 3,25
    APID 0x011  event                     PUS 5,1..4 (subtype by severity)
    APID 0x012  command verification      PUS 1,1 accepted / 1,3 started / 1,7 completed / 1,8 failed
    APID 0x013  on-board store status     PUS 15,131 (the store's newest frame and event, the dump's progress)
    APID 0x015  file metadata             PUS 13,1  (skyrack.link.files: id, size, segments, sha256, name)
    APID 0x016  file segment              PUS 13,2  (file id, segment number, up to 1 KiB of the file)

Every TM packet carries a CDS short time code (generation time, ms) and ends with the PUS CRC-16
(CCITT-FALSE). Its source data starts with the store index (u32: the frame's sequence number or
the event's id, so that the ground detects gaps beyond the 14-bit wrap and asks for them by
range) and a flag byte (0 realtime, 1 dump: Yamcs keeps the two streams apart). Then:

    housekeeping  every channel of the dictionary in its order: float f64, int i64, bool u8,
                  str 32 bytes UTF-8 NUL-padded; a missing float is NaN, a missing int INT_NONE
    event         frame seq u32 (0: none), event type u8 (dictionary order), message (u16 length
                  + UTF-8), data (u16 length + JSON)
    store status  newest frame seq u32, newest event id u32, and how far the dump has gone: every
                  frame and event up to sent-frame u32 / sent-event u32 has been sent at least once
                  (so a gap below them is a loss, a gap above them is not yet sent)

Telecommands (TC), application data JSON:

    APID 0x020  command                   PUS 8,1     {"id", "name", "args"}
    APID 0x021  time-tagged command       PUS 11,4    {"id", "name", "args", "at"}
    APID 0x022  retrieval by range        PUS 15,9    {"kind": "hk" | "event", "first", "last"}
    APID 0x023  a question for the satellite  PUS 8,1 {"id", "question", "history"}; the answer comes
                down as an `answer` event, verified on board against the store at arrival
    APID 0x024  file segments to send again   PUS 13,9  {"file", "first", "last"} (a NAK)
    APID 0x025  file received whole           PUS 13,10 {"file"} (the ACK: stop announcing it)
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from fastcrc import crc16
from spacepackets.ccsds.time import CdsShortTimestamp
from spacepackets.ecss.tc import PusTc
from spacepackets.ecss.tm import PusTm

from skyrack.telemetry.dictionary import CHANNELS, EVENTS, SEVERITIES

APID_HK, APID_EVENT, APID_VERIFY, APID_STORE = 0x010, 0x011, 0x012, 0x013
APID_FILE_META, APID_FILE_DATA = 0x015, 0x016
APID_COMMAND, APID_TIMED, APID_RETRIEVE, APID_ASK = 0x020, 0x021, 0x022, 0x023
TM_APIDS = {
    APID_HK: "hk",
    APID_EVENT: "event",
    APID_VERIFY: "verify",
    APID_STORE: "store",
    APID_FILE_META: "file_meta",
    APID_FILE_DATA: "file_data",
}
APID_FILE_NAK, APID_FILE_ACK = 0x024, 0x025
TC_APIDS = {
    APID_COMMAND: "command",
    APID_TIMED: "timed",
    APID_RETRIEVE: "retrieve",
    APID_ASK: "ask",
    APID_FILE_NAK: "file_nak",
    APID_FILE_ACK: "file_ack",
}
TC_SERVICE = {
    "command": (8, 1),
    "timed": (11, 4),
    "retrieve": (15, 9),
    "ask": (8, 1),
    "file_nak": (13, 9),
    "file_ack": (13, 10),
}
SERVICE = {APID_HK: 3, APID_EVENT: 5, APID_VERIFY: 1, APID_STORE: 15, APID_FILE_META: 13, APID_FILE_DATA: 13}
VERIFY_SUBTYPE = {"accepted": 1, "dispatched": 3, "completed": 7, "failed": 8}
EVENT_SUBTYPE = {"debug": 1, "info": 1, "warning": 2, "error": 3, "critical": 4}
STORE_STATUS_SUBTYPE = 131  # mission-specific subtype: the store's newest contents
SEQ_MODULO = 1 << 14
CCSDS_EPOCH_DAYS = 4383  # 1958-01-01 to 1970-01-01
STR_BYTES = 32
INT_NONE = -(1 << 63)
TIMESTAMP_LEN = CdsShortTimestamp.TIMESTAMP_SIZE
HEADER_LEN = 6
PUS_TM_OVERHEAD = HEADER_LEN + 7 + TIMESTAMP_LEN + 2  # primary + PUS-C secondary + time + CRC
EVENT_INDEX = {e.name: i for i, e in enumerate(EVENTS)}
_LEAD = struct.Struct(">IB")
_EVENT_HEAD = struct.Struct(">IBBB")  # frame seq, event type, severity, (reserved)
_STORE = struct.Struct(">IIII")
_FILE_META = struct.Struct(">QII32sH")  # size, segments, segments sent so far, sha256, name length
_FILE_SEG = struct.Struct(">I")  # segment number
FILE_SEGMENT_BYTES = 1024
MAX_FILE_BYTES = 1 << 34  # 16 GiB: anything larger is a damaged header


def _hk_struct() -> struct.Struct:
    codes = {"float": "d", "int": "q", "bool": "B", "str": f"{STR_BYTES}s"}
    return struct.Struct(">" + "".join(codes[c.type] for c in CHANNELS))


_HK = _hk_struct()


class PacketError(ValueError):
    """A packet the ground refuses; `reason` is one word for the log (crc, truncated, ...)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Packet:
    apid: int
    kind: str  # "hk", "event", "verify", "store"
    seq_count: int
    t: float  # generation time, unix seconds (ms resolution)
    index: int  # frame seq or event id (store status: 0)
    dump: bool
    body: dict[str, Any]


def time_code(t: float) -> bytes:
    """CDS short (days since 1958, ms of day), rounded to the nearest millisecond."""
    days, ms = divmod(round(t * 1000.0), 86_400_000)
    return CdsShortTimestamp(days + CCSDS_EPOCH_DAYS, ms).pack()


def read_time_code(raw: bytes) -> float:
    return CdsShortTimestamp.unpack(raw).as_unix_seconds()


def _tm(apid: int, subtype: int, seq_count: int, t: float, data: bytes) -> bytes:
    return bytes(
        PusTm(
            service=SERVICE[apid],
            message_subtype=subtype,
            timestamp=time_code(t),
            source_data=data,
            apid=apid,
            seq_count=seq_count % SEQ_MODULO,
        ).pack()
    )


def _fixed_str(value) -> bytes:
    raw = str(value or "").encode("utf-8")[:STR_BYTES]
    return raw.decode("utf-8", "ignore").encode("utf-8")  # never cut a character in half


def encode_frame(seq: int, t: float, values: dict, seq_count: int, dump: bool = False) -> bytes:
    fields = []
    for c in CHANNELS:
        v = values.get(c.name)
        if c.type == "float":
            fields.append(math.nan if v is None else float(v))
        elif c.type == "int":
            fields.append(INT_NONE if v is None else int(v))
        elif c.type == "bool":
            fields.append(1 if v else 0)
        else:
            fields.append(_fixed_str(v))
    return _tm(APID_HK, 25, seq_count, t, _LEAD.pack(seq, int(dump)) + _HK.pack(*fields))


def encode_event(event: dict, seq_count: int, dump: bool = False) -> bytes:
    """An event row of the archive (id, seq, t, name, severity, message, data): a command's
    state changes go on the verification APID, everything else on the event APID."""
    message = event["message"].encode("utf-8")[:1024]
    data = json.dumps(event["data"], default=str, separators=(",", ":")).encode("utf-8")
    body = (
        _LEAD.pack(event["id"], int(dump))
        + _EVENT_HEAD.pack(
            event["seq"] or 0, EVENT_INDEX[event["name"]], SEVERITIES.index(event["severity"]), 0
        )
        + struct.pack(">H", len(message))
        + message
        + struct.pack(">H", len(data))
        + data
    )
    if event["name"] == "command":
        apid, subtype = APID_VERIFY, VERIFY_SUBTYPE.get(event["data"].get("status"), 3)
    else:
        apid, subtype = APID_EVENT, EVENT_SUBTYPE[event["severity"]]
    return _tm(apid, subtype, seq_count, event["t"], body)


def encode_store_status(
    t: float, last_frame: int, last_event: int, seq_count: int, sent_frame: int = 0, sent_event: int = 0
) -> bytes:
    body = _STORE.pack(last_frame, last_event, sent_frame, sent_event)
    return _tm(APID_STORE, STORE_STATUS_SUBTYPE, seq_count, t, _LEAD.pack(0, 0) + body)


def encode_file_meta(
    t: float, file_id: int, name: str, size: int, segments: int, sent: int, sha256: bytes, seq_count: int
) -> bytes:
    raw_name = name.encode("utf-8")[:1024]
    body = _LEAD.pack(file_id, 0) + _FILE_META.pack(size, segments, sent, sha256, len(raw_name)) + raw_name
    return _tm(APID_FILE_META, 1, seq_count, t, body)


def encode_file_segment(
    t: float, file_id: int, segment: int, data: bytes, seq_count: int, dump: bool
) -> bytes:
    return _tm(
        APID_FILE_DATA, 2, seq_count, t, _LEAD.pack(file_id, int(dump)) + _FILE_SEG.pack(segment) + data
    )


def check_frame(raw: bytes) -> None:
    """The checks Yamcs' packet preprocessor makes, each with its own reason."""
    if len(raw) < HEADER_LEN:
        raise PacketError("truncated", f"{len(raw)} bytes, shorter than a packet header")
    length = int.from_bytes(raw[4:6], "big") + 1 + HEADER_LEN
    if len(raw) < length:
        raise PacketError("truncated", f"{len(raw)} of {length} bytes")
    if len(raw) > length:
        raise PacketError("length", f"{len(raw)} bytes, the header says {length}")
    if raw[0] >> 5 != 0:
        raise PacketError("version", f"packet version {raw[0] >> 5}")
    if crc16.ibm_3740(bytes(raw)) != 0:  # the CRC over the packet including its own CRC is 0
        raise PacketError("crc", "CRC-16 mismatch")


def decode(raw: bytes) -> Packet:
    """A TM packet as the ground reads it; a bad one raises PacketError with the reason."""
    check_frame(raw)
    apid = int.from_bytes(raw[0:2], "big") & 0x7FF
    if raw[0] & 0x10:
        raise PacketError("type", "a telecommand on the downlink")
    if apid not in TM_APIDS:
        raise PacketError("apid", f"unknown APID 0x{apid:03x}")
    if len(raw) < PUS_TM_OVERHEAD + _LEAD.size:
        raise PacketError("malformed", "no room for the source data")
    try:
        tm = PusTm.unpack(raw, TIMESTAMP_LEN)
        t = read_time_code(tm.timestamp)
    except Exception as exc:  # the library's own refusals, whatever their type
        raise PacketError("malformed", str(exc).splitlines()[0][:120]) from None
    data = bytes(tm.source_data)
    kind = TM_APIDS[apid]
    try:
        index, dump = _LEAD.unpack_from(data)
        rest = data[_LEAD.size :]
        if kind == "hk":
            body = _decode_hk(rest)
        elif kind == "file_meta":
            size, segments, sent, digest, n = _FILE_META.unpack_from(rest)
            name = rest[_FILE_META.size : _FILE_META.size + n].decode("utf-8")
            if _FILE_META.size + n != len(rest):
                raise ValueError("trailing bytes after the file name")
            if size > MAX_FILE_BYTES or segments != max(1, -(-size // FILE_SEGMENT_BYTES)) or sent > segments:
                raise ValueError(f"file size {size}, {segments} segments, {sent} sent do not agree")
            body = {"size": size, "segments": segments, "sent": sent, "sha256": digest.hex(), "name": name}
        elif kind == "file_data":
            (segment,) = _FILE_SEG.unpack_from(rest)
            data = rest[_FILE_SEG.size :]
            if len(data) > FILE_SEGMENT_BYTES or segment * FILE_SEGMENT_BYTES >= MAX_FILE_BYTES:
                raise ValueError(f"segment {segment} of {len(data)} bytes")
            body = {"segment": segment, "data": data}
        elif kind == "store":
            last_frame, last_event, sent_frame, sent_event = _STORE.unpack(rest)
            if sent_frame > last_frame or sent_event > last_event:
                raise ValueError("the store says it sent more than it holds")
            body = {
                "last_frame": last_frame,
                "last_event": last_event,
                "sent_frame": sent_frame,
                "sent_event": sent_event,
            }
        else:
            body = _decode_event(rest)
    except (struct.error, ValueError, KeyError, IndexError, UnicodeDecodeError) as exc:
        raise PacketError("malformed", f"{kind} source data: {exc}") from None
    return Packet(apid, kind, tm.seq_count, t, index, bool(dump), body)


def _decode_hk(rest: bytes) -> dict:
    if len(rest) != _HK.size:
        raise ValueError(f"{len(rest)} bytes of housekeeping, expected {_HK.size}")
    values = {}
    for c, v in zip(CHANNELS, _HK.unpack(rest)):
        if c.type == "float":
            v = None if math.isnan(v) else v
        elif c.type == "int":
            v = None if v == INT_NONE else v
        elif c.type == "bool":
            v = bool(v)
        else:
            v = v.rstrip(b"\0").decode("utf-8")
        values[c.name] = v
    return values


def _decode_event(rest: bytes) -> dict:
    frame_seq, type_index, severity, _ = _EVENT_HEAD.unpack_from(rest)
    pos = _EVENT_HEAD.size
    (n,) = struct.unpack_from(">H", rest, pos)
    message = rest[pos + 2 : pos + 2 + n].decode("utf-8")
    pos += 2 + n
    (m,) = struct.unpack_from(">H", rest, pos)
    data = json.loads(rest[pos + 2 : pos + 2 + m].decode("utf-8"))
    if pos + 2 + m != len(rest):
        raise ValueError("trailing bytes after the event data")
    if not isinstance(data, dict):
        raise ValueError("event data is not an object")
    return {
        "seq": frame_seq or None,
        "name": EVENTS[type_index].name,
        "severity": SEVERITIES[severity],
        "message": message,
        "data": data,
    }


# -- telecommands ----------------------------------------------------------------------------
def encode_tc(kind: str, body: dict, seq_count: int) -> bytes:
    apid = {v: k for k, v in TC_APIDS.items()}[kind]
    service, subtype = TC_SERVICE[kind]
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    return bytes(
        PusTc(
            service=service,
            message_subtype=subtype,
            apid=apid,
            seq_count=seq_count % SEQ_MODULO,
            app_data=data,
        ).pack()
    )


def decode_tc(raw: bytes) -> tuple[str, dict]:
    check_frame(raw)
    apid = int.from_bytes(raw[0:2], "big") & 0x7FF
    if apid not in TC_APIDS or not raw[0] & 0x10:
        raise PacketError("apid", f"not a telecommand APID 0x{apid:03x}")
    try:
        tc = PusTc.unpack(raw)
        return TC_APIDS[apid], json.loads(bytes(tc.app_data).decode("utf-8"))
    except Exception as exc:
        raise PacketError("malformed", str(exc).splitlines()[0][:120]) from None
