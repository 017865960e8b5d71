"""The telemetry dictionary as XTCE 1.2 (OMG's XML Telemetric and Command Exchange), the
mission database Yamcs loads, describing the downlink packets of `skyrack.link.packets` bit for
bit: the CCSDS primary header, the PUS-C TM secondary header with its CDS short time, and one
container per APID (housekeeping, event, command verification, store status), chosen by APID.

XTCE names may not hold dots, so a channel `power.battery_soc` is the parameter
`power_battery_soc` (its dictionary name is its short description). Units and descriptions
come from the dictionary, so the export cannot drift from the packets.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from skyrack.link import packets as P
from skyrack.telemetry.dictionary import CHANNELS, EVENTS, SEVERITIES

XTCE_NS = "http://www.omg.org/spec/XTCE/20180204"
MAX_TEXT_BITS = 8 * 65535


def xtce_name(channel: str) -> str:
    return channel.replace(".", "_")


def _sub(parent, tag: str, text: str | None = None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _uint(types, name: str, bits: int) -> None:
    t = _sub(types, "IntegerParameterType", name=name, signed="false", sizeInBits=bits)
    _sub(t, "IntegerDataEncoding", sizeInBits=bits, encoding="unsigned")


def _enum(types, name: str, labels: list[str]) -> None:
    t = _sub(types, "EnumeratedParameterType", name=name)
    _sub(t, "IntegerDataEncoding", sizeInBits=8, encoding="unsigned")
    enums = _sub(t, "EnumerationList")
    for value, label in enumerate(labels):
        _sub(enums, "Enumeration", value=value, label=label)


def _text(types, name: str, length_param: str) -> None:
    t = _sub(types, "StringParameterType", name=name)
    enc = _sub(t, "StringDataEncoding", encoding="UTF-8")
    var = _sub(enc, "Variable", maxSizeInBits=MAX_TEXT_BITS)
    dyn = _sub(var, "DynamicValue")
    _sub(dyn, "ParameterInstanceRef", parameterRef=length_param)
    _sub(dyn, "LinearAdjustment", slope=8)


def _channel_type(types, channel) -> str:
    name = f"{xtce_name(channel.name)}_t"
    if channel.type == "float":
        t = _sub(types, "FloatParameterType", name=name, sizeInBits=64)
        _units(t, channel.unit)
        _sub(t, "FloatDataEncoding", sizeInBits=64, encoding="IEEE754_1985")
    elif channel.type == "int":
        t = _sub(types, "IntegerParameterType", name=name, signed="true", sizeInBits=64)
        _units(t, channel.unit)
        _sub(t, "IntegerDataEncoding", sizeInBits=64, encoding="twosComplement")
    elif channel.type == "bool":
        t = _sub(types, "BooleanParameterType", name=name, zeroStringValue="false", oneStringValue="true")
        _sub(t, "IntegerDataEncoding", sizeInBits=8, encoding="unsigned")
    else:
        t = _sub(types, "StringParameterType", name=name)
        enc = _sub(t, "StringDataEncoding", encoding="UTF-8")
        size = _sub(enc, "SizeInBits")
        _sub(_sub(size, "Fixed"), "FixedValue", str(P.STR_BYTES * 8))
        _sub(size, "TerminationChar", "00")
    return name


def _units(t, unit: str) -> None:
    if unit and unit not in ("1", "bool"):
        _sub(_sub(t, "UnitSet"), "Unit", unit)


def _container(
    containers,
    name: str,
    base: str | None,
    restrict: dict[str, int],
    entries: list[str],
    abstract=False,
    description="",
):
    attrs = {"name": name}
    if abstract:
        attrs["abstract"] = "true"
    c = _sub(containers, "SequenceContainer", **attrs)
    if description:
        _sub(c, "LongDescription", description)
    entry_list = _sub(c, "EntryList")
    for entry in entries:
        _sub(entry_list, "ParameterRefEntry", parameterRef=entry)
    if base is not None:
        b = _sub(c, "BaseContainer", containerRef=base)
        if restrict:
            crit = _sub(b, "RestrictionCriteria")
            holder = _sub(crit, "ComparisonList") if len(restrict) > 1 else crit
            for param, value in restrict.items():
                _sub(holder, "Comparison", parameterRef=param, value=value, useCalibratedValue="false")
    return c


def xtce_document(name: str = "skyrack") -> str:
    ET.register_namespace("xtce", XTCE_NS)
    root = ET.Element(
        "SpaceSystem",
        {"name": name, "xmlns": XTCE_NS},
    )
    _sub(
        root,
        "LongDescription",
        "skyrack downlink: CCSDS space packets with PUS-C TM headers (skyrack.link.packets)",
    )
    tm = _sub(root, "TelemetryMetaData")
    types = _sub(tm, "ParameterTypeSet")
    params = _sub(tm, "ParameterSet")
    containers = _sub(tm, "ContainerSet")

    for bits in (1, 2, 3, 4, 8, 11, 14, 16, 32):
        _uint(types, f"uint{bits}_t", bits)
    _enum(types, "event_type_t", [e.name for e in EVENTS])
    _enum(types, "severity_t", list(SEVERITIES))
    _text(types, "event_message_t", "event_message_length")
    _text(types, "event_data_t", "event_data_length")

    def param(pname: str, ptype: str, description: str = "") -> str:
        attrs = {"name": pname, "parameterTypeRef": ptype}
        if description:
            attrs["shortDescription"] = description[:80]
        _sub(params, "Parameter", **attrs)
        return pname

    header = [
        param("ccsds_version", "uint3_t"),
        param("ccsds_type", "uint1_t"),
        param("ccsds_secondary_header", "uint1_t"),
        param("ccsds_apid", "uint11_t"),
        param("ccsds_sequence_flags", "uint2_t"),
        param("ccsds_sequence_count", "uint14_t"),
        param("ccsds_packet_length", "uint16_t", "data octets - 1"),
    ]
    pus = [
        param("pus_version", "uint4_t"),
        param("pus_time_reference", "uint4_t"),
        param("pus_service", "uint8_t"),
        param("pus_subtype", "uint8_t"),
        param("pus_message_counter", "uint16_t"),
        param("pus_destination", "uint16_t"),
        param("cds_pfield", "uint8_t", "CDS short time code's P-field (0x40)"),
        param("cds_days", "uint16_t", "CDS short: days since 1958-01-01"),
        param("cds_ms_of_day", "uint32_t", "CDS short: milliseconds of the day"),
        param("store_index", "uint32_t", "frame sequence number or event id in the on-board store"),
        param("dump", "uint8_t", "0 realtime, 1 dump or retransmission"),
    ]
    crc = param("pus_crc16", "uint16_t", "CRC-16/CCITT-FALSE over the whole packet")
    hk = []
    for c in CHANNELS:
        hk.append(param(xtce_name(c.name), _channel_type(types, c), f"{c.name}: {c.description}"))
    event = [
        param("event_frame_seq", "uint32_t", "frame the event belongs to (0: none)"),
        param("event_type", "event_type_t"),
        param("event_severity", "severity_t"),
        param("event_reserved", "uint8_t"),
        param("event_message_length", "uint16_t"),
        param("event_message", "event_message_t"),
        param("event_data_length", "uint16_t"),
        param("event_data", "event_data_t", "the event's data as JSON"),
    ]
    store = [
        param("store_last_frame", "uint32_t", "newest frame in the on-board store"),
        param("store_last_event", "uint32_t", "newest event in the on-board store"),
        param("store_sent_frame", "uint32_t", "every frame up to this one has been sent at least once"),
        param("store_sent_event", "uint32_t", "every event up to this one has been sent at least once"),
    ]

    _container(containers, "CCSDSPacket", None, {}, header, abstract=True)
    _container(containers, "PUSTelemetry", "CCSDSPacket", {"ccsds_type": 0}, pus, abstract=True)
    for cname, apid, entries, text in (
        ("Housekeeping", P.APID_HK, hk, "PUS 3,25: one telemetry frame, every channel"),
        ("Event", P.APID_EVENT, event, "PUS 5: an event"),
        (
            "CommandVerification",
            P.APID_VERIFY,
            event,
            "PUS 1: a command's acceptance, start, completion, failure",
        ),
        ("StoreStatus", P.APID_STORE, store, "PUS 15: the on-board store's newest contents"),
    ):
        _container(containers, cname, "PUSTelemetry", {"ccsds_apid": apid}, entries + [crc], description=text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
