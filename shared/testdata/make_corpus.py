#!/usr/bin/env python3
"""Writes p1hub's test corpus: telegrams we made up ourselves, with valid CRCs, and byte streams built from them.

Run from anywhere: `python3 shared/testdata/make_corpus.py`. It is deterministic (fixed seeds, no clock), so
running it again rewrites the same bytes; the output is committed and the Rust tests read the files.

Telegrams (`*.txt`, one telegram each, exactly as a meter sends it: CR LF line ends, `!` + CRC16):
  CRC-16/ARC (poly 0xA001 reflected, init 0) over every byte from `/` through `!` inclusive, 4 upper-case hex
  digits; DSMR 2.2/3.0 telegrams end in a bare `!`. The values, widths and decimals follow what real meters of
  each kind write (see ../../P1-FACTS.md), but every number, id and date here is invented.

Streams (`streams/*.bin`): telegrams from the corpus with garbage, truncation, flipped bytes, NUL/0xFF runs,
non-ASCII noise and a 64 KiB line. `streams/expected.json` says, for each stream, how many valid telegrams and CRC
failures a framer with the default 8 KiB cap must find, and which corpus files the valid telegrams are. Noise
never contains `/` (which would start a frame) or `DB 08` (which could start an encrypted DLMS frame), so those
counts do not depend on how a framer treats noise that happens to look like a frame.
"""

import datetime as dt
import json
import os
import random
import zoneinfo

HERE = os.path.dirname(os.path.abspath(__file__))
AMS = zoneinfo.ZoneInfo("Europe/Amsterdam")
MAX_TELEGRAM_BYTES = 8192


def crc16(data: bytes) -> int:
    """CRC-16/ARC: check(b"123456789") == 0xBB3D."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


assert crc16(b"123456789") == 0xBB3D


def tst(year, month, day, hour=0, minute=0, second=0, flag=True):
    """A P1 timestamp YYMMDDhhmmssX for a local time in NL/BE/LU; X is S in summer time, W in winter."""
    t = dt.datetime(year, month, day, hour, minute, second, tzinfo=AMS)
    text = t.strftime("%y%m%d%H%M%S")
    if flag:
        text += "S" if t.dst() else "W"
    return text


def hexs(text: str) -> str:
    return text.encode("ascii").hex().upper()


def telegram(header: str, lines: list, crc="full", eol="\r\n") -> bytes:
    """Frames data lines. crc: "full" (4 digits), "short" (unpadded, as some meters send), or None (DSMR 2.2/3)."""
    body = "/" + header + eol + eol + "".join(line + eol for line in lines) + "!"
    data = body.encode("ascii")
    if crc is None:
        return data + b"\r\n"
    value = crc16(data)
    digits = "%04X" % value if crc == "full" else "%X" % value
    return data + digits.encode("ascii") + b"\r\n"


CORPUS = {}


def add(name, data):
    assert name not in CORPUS
    CORPUS[name] = data


# --- NL DSMR 2.2: Iskra ME382, 9600 7E1, no CRC, limiter in A, gas on two lines, no device-type line. ---------
add("dsmr22.txt", telegram("ISk5\\2ME382-1003", [
    "0-0:96.1.1(4B414C37303035313132333435363738)",
    "1-0:1.8.1(00231.512*kWh)",
    "1-0:1.8.2(00187.004*kWh)",
    "1-0:2.8.1(00000.000*kWh)",
    "1-0:2.8.2(00000.000*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.7.0(0000.86*kW)",
    "1-0:2.7.0(0000.00*kW)",
    "0-0:17.0.0(999*A)",
    "0-0:96.3.10(1)",
    "0-0:96.13.1()",
    "0-0:96.13.0()",
    "0-1:96.1.0(3238303031343831323334353637383930)",
    "0-1:24.3.0(" + tst(2011, 11, 3, 14, 0, 0, flag=False) + ")(08)(60)(1)(0-1:24.2.1)(m3)",
    "(00412.961)",
    "0-1:24.4.0(1)",
], crc=None))

# --- NL DSMR 3.0: Iskra MT382, no CRC, device type (03), gas on two lines, unflagged stamps. ------------------
add("dsmr30.txt", telegram("ISk5\\2MT382-1000", [
    "0-0:96.1.1(4B384547303034303436333935353037)",
    "1-0:1.8.1(03218.117*kWh)",
    "1-0:1.8.2(02745.392*kWh)",
    "1-0:2.8.1(00000.000*kWh)",
    "1-0:2.8.2(00000.000*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.7.0(0001.19*kW)",
    "1-0:2.7.0(0000.00*kW)",
    "0-0:17.0.0(0999.00*kW)",
    "0-0:96.3.10(1)",
    "0-0:96.13.1()",
    "0-0:96.13.0()",
    "0-1:24.1.0(03)",
    "0-1:96.1.0(3232323241424344313233343536373839)",
    "0-1:24.3.0(" + tst(2013, 7, 9, 16, 0, 0, flag=False) + ")(00)(60)(1)(0-1:24.2.1)(m3)",
    "(01897.034)",
    "0-1:24.4.0(1)",
], crc=None))

# --- NL DSMR 4.0: Landis+Gyr E350, single phase, gas via 24.2.1, a power failure with placeholder end. -------
add("dsmr40.txt", telegram("XMX5LGBBFFB231215493", [
    "1-3:0.2.8(40)",
    "0-0:1.0.0(" + tst(2014, 1, 21, 9, 45, 12) + ")",
    "0-0:96.1.1(4530303034303031353934373534343134)",
    "1-0:1.8.1(002074.842*kWh)",
    "1-0:1.8.2(000881.383*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.7.0(00.244*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:17.0.0(999.9*kW)",
    "0-0:96.3.10(1)",
    "0-0:96.7.21(00003)",
    "0-0:96.7.9(00001)",
    "1-0:99.97.0(1)(0-0:96.7.19)(000101000001W)(2147483647*s)",
    "1-0:32.32.0(00000)",
    "1-0:32.36.0(00000)",
    "0-0:96.13.1()",
    "0-0:96.13.0()",
    "1-0:31.7.0(001*A)",
    "1-0:21.7.0(00.244*kW)",
    "1-0:22.7.0(00.000*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303136353631323038383439313133)",
    "0-1:24.2.1(" + tst(2014, 1, 21, 9, 0, 0) + ")(00844.456*m3)",
    "0-1:24.4.0(1)",
]))

# --- NL DSMR 4.2: Kaifa MA105 single phase. -------------------------------------------------------------------
add("dsmr42_1phase.txt", telegram("KFM5KAIFA-METER", [
    "1-3:0.2.8(42)",
    "0-0:1.0.0(" + tst(2016, 8, 14, 21, 3, 42) + ")",
    "0-0:96.1.1(4530303237303030303130313738343136)",
    "1-0:1.8.1(004417.210*kWh)",
    "1-0:1.8.2(003985.664*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.7.0(00.424*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00002)",
    "0-0:96.7.9(00000)",
    "1-0:99.97.0(0)(0-0:96.7.19)",
    "1-0:32.32.0(00000)",
    "1-0:32.36.0(00000)",
    "0-0:96.13.1()",
    "0-0:96.13.0()",
    "1-0:31.7.0(002*A)",
    "1-0:21.7.0(00.424*kW)",
    "1-0:22.7.0(00.000*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303332353631323732393337323136)",
    "0-1:24.2.1(" + tst(2016, 8, 14, 21, 0, 0) + ")(02569.646*m3)",
]))

# --- NL DSMR 4.2: Kaifa MA304 three phase. --------------------------------------------------------------------
add("dsmr42_3phase.txt", telegram("KFM5KAIFA-METER", [
    "1-3:0.2.8(42)",
    "0-0:1.0.0(" + tst(2017, 2, 3, 7, 12, 5) + ")",
    "0-0:96.1.1(4530303236303030303234343133323136)",
    "1-0:1.8.1(007341.886*kWh)",
    "1-0:1.8.2(006123.004*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.7.0(02.793*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00007)",
    "0-0:96.7.9(00002)",
    "1-0:99.97.0(2)(0-0:96.7.19)(" + tst(2016, 3, 12, 9, 45, 12) + ")(0000000412*s)("
    + tst(2016, 9, 30, 2, 11, 40) + ")(0000010533*s)",
    "1-0:32.32.0(00001)",
    "1-0:52.32.0(00001)",
    "1-0:72.32.0(00001)",
    "1-0:32.36.0(00000)",
    "1-0:52.36.0(00000)",
    "1-0:72.36.0(00000)",
    "0-0:96.13.1()",
    "0-0:96.13.0()",
    "1-0:31.7.0(004*A)",
    "1-0:51.7.0(003*A)",
    "1-0:71.7.0(005*A)",
    "1-0:21.7.0(00.918*kW)",
    "1-0:41.7.0(00.706*kW)",
    "1-0:61.7.0(01.169*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:42.7.0(00.000*kW)",
    "1-0:62.7.0(00.000*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303339303031363431363034363137)",
    "0-1:24.2.1(" + tst(2017, 2, 3, 7, 0, 0) + ")(05102.337*m3)",
]))

# --- NL DSMR 5.0: Iskra AM550 single phase, voltage with one decimal. -----------------------------------------
add("dsmr50_1phase.txt", telegram("ISK5\\2M550E-1011", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2019, 10, 26, 18, 30, 1) + ")",
    "0-0:96.1.1(4530303434303037313331363530363138)",
    "1-0:1.8.1(000561.911*kWh)",
    "1-0:1.8.2(000612.024*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.7.0(00.193*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00005)",
    "0-0:96.7.9(00001)",
    "1-0:99.97.0(1)(0-0:96.7.19)(" + tst(2019, 4, 2, 11, 20, 3) + ")(0000001027*s)",
    "1-0:32.32.0(00003)",
    "1-0:32.36.0(00000)",
    "0-0:96.13.0()",
    "1-0:32.7.0(230.4*V)",
    "1-0:31.7.0(001*A)",
    "1-0:21.7.0(00.193*kW)",
    "1-0:22.7.0(00.000*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303538333430303034393839373139)",
    "0-1:24.2.1(" + tst(2019, 10, 26, 18, 30, 0) + ")(00379.318*m3)",
]))

# --- NL DSMR 5.0.2: Landis+Gyr E360 three phase, gas and water: the size benchmark telegram. ------------------
add("dsmr5_3phase_gas_water.txt", telegram("XMX5LGF0010453271829", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2024, 6, 17, 14, 35, 4) + ")",
    "0-0:96.1.1(4530303439303037333939373533343138)",
    "1-0:1.8.1(012345.678*kWh)",
    "1-0:1.8.2(009876.543*kWh)",
    "1-0:2.8.1(000123.456*kWh)",
    "1-0:2.8.2(000345.678*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.7.0(01.193*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00010)",
    "0-0:96.7.9(00004)",
    "1-0:99.97.0(2)(0-0:96.7.19)(" + tst(2023, 3, 12, 9, 45, 12) + ")(0000000240*s)("
    + tst(2023, 11, 5, 16, 1, 2) + ")(0000003612*s)",
    "1-0:32.32.0(00002)",
    "1-0:52.32.0(00001)",
    "1-0:72.32.0(00003)",
    "1-0:32.36.0(00000)",
    "1-0:52.36.0(00000)",
    "1-0:72.36.0(00001)",
    "0-0:96.13.0()",
    "1-0:32.7.0(230.1*V)",
    "1-0:52.7.0(231.4*V)",
    "1-0:72.7.0(229.8*V)",
    "1-0:31.7.0(002*A)",
    "1-0:51.7.0(001*A)",
    "1-0:71.7.0(002*A)",
    "1-0:21.7.0(00.412*kW)",
    "1-0:41.7.0(00.275*kW)",
    "1-0:61.7.0(00.506*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:42.7.0(00.000*kW)",
    "1-0:62.7.0(00.000*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303339303031373330353235303137)",
    "0-1:24.2.1(" + tst(2024, 6, 17, 14, 30, 4) + ")(04123.456*m3)",
    "0-2:24.1.0(007)",
    "0-2:96.1.0(3853414731323334353637383930)",
    "0-2:24.2.1(" + tst(2024, 6, 17, 14, 30, 0) + ")(00321.098*m3)",
]))

# --- NL DSMR 5.0: Sagemcom T210-D exporting solar power (negative net power). ---------------------------------
add("dsmr50_solar.txt", telegram("Ene5\\T210-D ESMR5.0", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2023, 5, 20, 13, 2, 55) + ")",
    "0-0:96.1.1(4530303632303030303032363839373230)",
    "1-0:1.8.1(003125.104*kWh)",
    "1-0:1.8.2(002987.350*kWh)",
    "1-0:2.8.1(001012.779*kWh)",
    "1-0:2.8.2(002260.118*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.7.0(00.000*kW)",
    "1-0:2.7.0(03.214*kW)",
    "0-0:96.7.21(00012)",
    "0-0:96.7.9(00003)",
    "1-0:99.97.0(0)(0-0:96.7.19)",
    "1-0:32.32.0(00004)",
    "1-0:52.32.0(00004)",
    "1-0:72.32.0(00004)",
    "1-0:32.36.0(00021)",
    "1-0:52.36.0(00019)",
    "1-0:72.36.0(00024)",
    "0-0:96.13.0()",
    "1-0:32.7.0(241.2*V)",
    "1-0:52.7.0(243.8*V)",
    "1-0:72.7.0(244.1*V)",
    "1-0:31.7.0(001*A)",
    "1-0:51.7.0(007*A)",
    "1-0:71.7.0(007*A)",
    "1-0:21.7.0(00.152*kW)",
    "1-0:41.7.0(00.000*kW)",
    "1-0:61.7.0(00.000*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:42.7.0(01.683*kW)",
    "1-0:62.7.0(01.683*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303539303031393237333538323139)",
    "0-1:24.2.1(" + tst(2023, 5, 20, 13, 0, 0) + ")(02231.802*m3)",
]))

# --- NL DSMR 5.0: a text message from the grid operator and a power failure log with three entries. -----------
MESSAGE = "Onderhoud aan het net op 12-07 tussen 09:00 en 11:00."
add("dsmr50_message_failures.txt", telegram("ISK5\\2M550T-1012", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2022, 7, 4, 8, 15, 30) + ")",
    "0-0:96.1.1(4530303434303037313438393234353138)",
    "1-0:1.8.1(008172.330*kWh)",
    "1-0:1.8.2(007641.907*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.7.0(00.562*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00031)",
    "0-0:96.7.9(00003)",
    "1-0:99.97.0(3)(0-0:96.7.19)(" + tst(2021, 12, 24, 17, 3, 11) + ")(0000000187*s)("
    + tst(2022, 3, 27, 3, 59, 59) + ")(0000000001*s)(" + tst(2022, 6, 30, 23, 41, 8) + ")(0000012004*s)",
    "1-0:32.32.0(00006)",
    "1-0:52.32.0(00005)",
    "1-0:72.32.0(00007)",
    "1-0:32.36.0(00000)",
    "1-0:52.36.0(00000)",
    "1-0:72.36.0(00000)",
    "0-0:96.13.0(" + hexs(MESSAGE) + ")",
    "1-0:32.7.0(229.0*V)",
    "1-0:52.7.0(228.5*V)",
    "1-0:72.7.0(230.9*V)",
    "1-0:31.7.0(001*A)",
    "1-0:51.7.0(000*A)",
    "1-0:71.7.0(001*A)",
    "1-0:21.7.0(00.289*kW)",
    "1-0:41.7.0(00.011*kW)",
    "1-0:61.7.0(00.262*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:42.7.0(00.000*kW)",
    "1-0:62.7.0(00.010*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303539303031393434383137363232)",
    "0-1:24.2.1(" + tst(2022, 7, 4, 8, 15, 0) + ")(06307.115*m3)",
]))


# --- NL DSMR 5.0 with `*255` on every reference and a 3-digit (unpadded) CRC. ---------------------------------
def star255(counter: int) -> bytes:
    return telegram("XMX5LGF0010455781126", [
        "1-3:0.2.8*255(50)",
        "0-0:1.0.0*255(" + tst(2021, 2, 9, 6, 40, 12) + ")",
        "0-0:96.1.1*255(4530303439303037333939383133323138)",
        "1-0:1.8.1*255(000907.226*kWh)",
        "1-0:1.8.2*255(001155.870*kWh)",
        "1-0:2.8.1*255(000000.000*kWh)",
        "1-0:2.8.2*255(000000.000*kWh)",
        "0-0:96.14.0*255(0001)",
        "1-0:1.7.0*255(00.%03d*kW)" % counter,
        "1-0:2.7.0*255(00.000*kW)",
        "0-0:96.7.21*255(00001)",
        "0-0:96.7.9*255(00000)",
        "1-0:99.97.0*255(0)(0-0:96.7.19)",
        "1-0:32.32.0*255(00000)",
        "1-0:32.36.0*255(00000)",
        "0-0:96.13.0*255()",
        "1-0:32.7.0*255(232.0*V)",
        "1-0:31.7.0*255(000*A)",
        "1-0:21.7.0*255(00.%03d*kW)" % counter,
        "1-0:22.7.0*255(00.000*kW)",
        "0-1:24.1.0*255(003)",
        "0-1:96.1.0*255(4730303539303031393431343437383230)",
        "0-1:24.2.1*255(" + tst(2021, 2, 9, 6, 40, 0) + ")(01045.771*m3)",
    ], crc="short")


# The first reading of the power register (W) that makes the CRC fit in three hex digits.
STAR255_WATTS = next(w for w in range(100, 1000) if len(star255(w).rsplit(b"!", 1)[1]) == 5)
add("dsmr50_star255_crc3.txt", star255(STAR255_WATTS))

# --- NL DSMR 5.0 with a heat meter (type 4, GJ) on channel 1 and no gas. --------------------------------------
add("dsmr50_heat.txt", telegram("ISK5\\2M550T-1013", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2020, 12, 1, 19, 0, 44) + ")",
    "0-0:96.1.1(4530303434303037313832373733363139)",
    "1-0:1.8.1(001832.449*kWh)",
    "1-0:1.8.2(001745.020*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.7.0(01.047*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00002)",
    "0-0:96.7.9(00000)",
    "1-0:99.97.0(0)(0-0:96.7.19)",
    "1-0:32.32.0(00000)",
    "1-0:32.36.0(00000)",
    "0-0:96.13.0()",
    "1-0:32.7.0(227.9*V)",
    "1-0:31.7.0(004*A)",
    "1-0:21.7.0(01.047*kW)",
    "1-0:22.7.0(00.000*kW)",
    "0-1:24.1.0(004)",
    "0-1:96.1.0(4B414D31393132333435363738393031)",
    "0-1:24.2.1(" + tst(2020, 12, 1, 19, 0, 0) + ")(0042.518*GJ)",
]))

# --- NL DSMR 5.0 with placeholder stamps: meter time, power failure end and gas reading. ----------------------
add("dsmr50_placeholders.txt", telegram("XMX5LGF0010461209348", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(000101010000W)",
    "0-0:96.1.1(4530303439303037333939393132383139)",
    "1-0:1.8.1(000000.031*kWh)",
    "1-0:1.8.2(000000.000*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.7.0(00.000*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00000)",
    "0-0:96.7.9(00001)",
    "1-0:99.97.0(1)(0-0:96.7.19)(000101000001W)(2147483647*s)",
    "1-0:32.32.0(00000)",
    "1-0:32.36.0(00000)",
    "0-0:96.13.0()",
    "1-0:32.7.0(235.2*V)",
    "1-0:31.7.0(000*A)",
    "1-0:21.7.0(00.000*kW)",
    "1-0:22.7.0(00.000*kW)",
    "0-1:24.1.0(003)",
    "0-1:96.1.0(4730303539303031393530303031323231)",
    "0-1:24.2.1(632525252525W)(00000.000*m3)",
]))

# --- NL DSMR 4.2 with bare LF line ends (seen behind some bridges); the CRC covers the bytes as sent. -------------
add("dsmr42_lf_only.txt", telegram("KFM5KAIFA-METER", [
    "1-3:0.2.8(42)",
    "0-0:1.0.0(" + tst(2018, 3, 25, 3, 0, 2) + ")",
    "0-0:96.1.1(4530303236303030303231373938363137)",
    "1-0:1.8.1(002210.503*kWh)",
    "1-0:1.8.2(001932.118*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.7.0(00.301*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.7.21(00001)",
    "0-0:96.7.9(00000)",
    "1-0:99.97.0(0)(0-0:96.7.19)",
    "1-0:32.32.0(00000)",
    "1-0:32.36.0(00000)",
    "0-0:96.13.1()",
    "0-0:96.13.0()",
    "1-0:31.7.0(001*A)",
    "1-0:21.7.0(00.301*kW)",
    "1-0:22.7.0(00.000*kW)",
], eol="\n"))

# --- NL DSMR 5.0 with a 1024-character text message (2048 hex digits, the spec's maximum). ---------------------
LONG_MESSAGE = ("Let op: uw slimme meter krijgt binnenkort nieuwe software. " * 20)[:1024]
add("dsmr50_long_message.txt", telegram("ISK5\\2M550T-1012", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2022, 1, 15, 12, 0, 0) + ")",
    "0-0:96.1.1(4530303434303037313531303837323138)",
    "1-0:1.8.1(000120.004*kWh)",
    "1-0:1.8.2(000098.771*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.7.0(00.874*kW)",
    "1-0:2.7.0(00.000*kW)",
    "0-0:96.13.0(" + hexs(LONG_MESSAGE) + ")",
    "1-0:32.7.0(231.0*V)",
    "1-0:31.7.0(003*A)",
]))

# --- NL DSMR 5.0 with broken lines inside a CRC-valid telegram: each is reported, the rest survives. ----------
add("dsmr50_malformed_lines.txt", telegram("ISK5\\2M550T-1012", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2022, 9, 1, 10, 0, 0) + ")",
    "0-0:96.1.1(4530303434303037313531303837333138)",
    "1-0:1.8.1(000431.092*kWh)",
    "this line is not P1",
    "1-0:1.8.2(000377.430*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "1-0:1.7.0(00.7x1*kW)",
    "1-0:2.7.0(00.000*kW)",
    "1-0:32.7.0(231.0*V",
    "1-0:31.7.0(003*m3)",
    "0-0:96.14.0(0002)",
    "0-1:24.1.0(003)",
    "0-1:24.2.1(" + tst(2022, 9, 1, 10, 0, 0) + ")(00812.440*m3)",
]))

# --- Belgian e-MUCS (Fluvius), single phase, two months of capacity history. ----------------------------------
add("belgian_1phase.txt", telegram("FLU5\\253769484_A", [
    "0-0:96.1.4(50217)",
    "0-0:96.1.1(3153414733313031303231363035)",
    "0-0:1.0.0(" + tst(2024, 6, 18, 10, 15, 30) + ")",
    "1-0:1.8.1(000823.051*kWh)",
    "1-0:1.8.2(001107.238*kWh)",
    "1-0:2.8.1(000014.660*kWh)",
    "1-0:2.8.2(000003.102*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.4.0(00.518*kW)",
    "1-0:1.6.0(" + tst(2024, 6, 3, 18, 45, 0) + ")(03.214*kW)",
    "0-0:98.1.0(2)(1-0:1.6.0)(1-0:1.6.0)(" + tst(2024, 5, 1) + ")(" + tst(2024, 4, 22, 18, 15, 0) + ")(03.562*kW)("
    + tst(2024, 6, 1) + ")(" + tst(2024, 5, 7, 19, 0, 0) + ")(04.104*kW)",
    "1-0:1.7.0(00.412*kW)",
    "1-0:2.7.0(00.000*kW)",
    "1-0:21.7.0(00.412*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:32.7.0(232.4*V)",
    "1-0:31.7.0(002.12*A)",
    "0-0:96.3.10(1)",
    "0-0:17.0.0(999.9*kW)",
    "1-0:31.4.0(999*A)",
    "0-0:96.13.0()",
]))


# --- Belgian three phase with gas (24.2.3) and thirteen months of capacity history: a benchmark telegram. ---------
def month_rows(n: int):
    rows = []
    year, month = 2024, 6
    peaks = ["02.871", "03.004", "04.512", "05.127", "06.031", "05.884", "04.990", "04.406", "03.732", "03.118",
             "02.905", "02.760", "03.391"]
    for i in range(n):
        # Month start of each of the last n months, and a peak somewhere inside the month before it.
        m_year, m_month = (year, month - i) if month - i > 0 else (year - 1, month - i + 12)
        p_year, p_month = (m_year, m_month - 1) if m_month > 1 else (m_year - 1, 12)
        rows.append((tst(m_year, m_month, 1), tst(p_year, p_month, 3 + i, 17 + i % 4, 15 * (i % 4), 0), peaks[i]))
    return list(reversed(rows))


HISTORY = month_rows(13)
add("belgian_13months.txt", telegram("FLU5\\253770234_A", [
    "0-0:96.1.4(50217)",
    "0-0:96.1.1(3153414733313033303537363839)",
    "0-0:1.0.0(" + tst(2024, 6, 18, 19, 42, 7) + ")",
    "1-0:1.8.1(004512.077*kWh)",
    "1-0:1.8.2(005983.440*kWh)",
    "1-0:2.8.1(001276.512*kWh)",
    "1-0:2.8.2(000541.090*kWh)",
    "0-0:96.14.0(0001)",
    "1-0:1.4.0(02.351*kW)",
    "1-0:1.6.0(" + tst(2024, 6, 11, 18, 0, 0) + ")(04.388*kW)",
    "0-0:98.1.0(13)(1-0:1.6.0)(1-0:1.6.0)" + "".join("(%s)(%s)(%s*kW)" % row for row in HISTORY),
    "1-0:1.7.0(02.790*kW)",
    "1-0:2.7.0(00.000*kW)",
    "1-0:21.7.0(00.987*kW)",
    "1-0:41.7.0(01.011*kW)",
    "1-0:61.7.0(00.792*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:42.7.0(00.000*kW)",
    "1-0:62.7.0(00.000*kW)",
    "1-0:32.7.0(229.8*V)",
    "1-0:52.7.0(230.6*V)",
    "1-0:72.7.0(231.1*V)",
    "1-0:31.7.0(004.37*A)",
    "1-0:51.7.0(004.48*A)",
    "1-0:71.7.0(003.51*A)",
    "0-0:96.3.10(1)",
    "0-0:17.0.0(999.9*kW)",
    "1-0:31.4.0(999*A)",
    "0-0:96.13.0()",
    "0-1:24.1.0(003)",
    "0-1:96.1.1(37464C4F32313139303333373333)",
    "0-1:24.4.0(1)",
    "0-1:24.2.3(" + tst(2024, 6, 18, 19, 40, 0) + ")(03256.104*m3)",
]))

# --- Belgian with gas (24.2.3) on channel 1 and a water meter on channel 2. -----------------------------------
add("belgian_water_gas.txt", telegram("FLU5\\253769484_A", [
    "0-0:96.1.4(50217)",
    "0-0:96.1.1(3153414733313031303231363036)",
    "0-0:1.0.0(" + tst(2023, 11, 2, 7, 30, 0) + ")",
    "1-0:1.8.1(000455.120*kWh)",
    "1-0:1.8.2(000611.318*kWh)",
    "1-0:2.8.1(000000.000*kWh)",
    "1-0:2.8.2(000000.000*kWh)",
    "0-0:96.14.0(0002)",
    "1-0:1.4.0(00.210*kW)",
    "1-0:1.6.0(" + tst(2023, 11, 1, 18, 30, 0) + ")(01.887*kW)",
    "0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(" + tst(2023, 11, 1) + ")(" + tst(2023, 10, 14, 12, 15, 0)
    + ")(02.540*kW)",
    "1-0:1.7.0(00.188*kW)",
    "1-0:2.7.0(00.000*kW)",
    "1-0:21.7.0(00.188*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:32.7.0(233.0*V)",
    "1-0:31.7.0(000.97*A)",
    "0-0:96.3.10(1)",
    "0-0:17.0.0(999.9*kW)",
    "1-0:31.4.0(999*A)",
    "0-0:96.13.0()",
    "0-1:24.1.0(003)",
    "0-1:96.1.1(37464C4F32313139303334313131)",
    "0-1:24.4.0(1)",
    "0-1:24.2.3(" + tst(2023, 11, 2, 7, 25, 0) + ")(00512.330*m3)",
    "0-2:24.1.0(007)",
    "0-2:96.1.1(3853414731323334353637383931)",
    "0-2:24.2.1(" + tst(2023, 11, 2, 7, 25, 0) + ")(00074.081*m3)",
]))

# --- Luxembourg Smarty (Sagemcom T210-D), plaintext: totals only, reactive energy, limiter in kVA. ------------
add("luxembourg_smarty.txt", telegram("Lux5\\253663661_D", [
    "1-3:0.2.8(42)",
    "0-0:1.0.0(" + tst(2023, 3, 15, 15, 53, 42) + ")",
    "0-0:42.0.0(53414731303330373030303331323234)",
    "1-0:1.8.0(003917.552*kWh)",
    "1-0:2.8.0(000006.281*kWh)",
    "1-0:3.8.0(000201.447*kvarh)",
    "1-0:4.8.0(000987.013*kvarh)",
    "1-0:1.7.0(01.512*kW)",
    "1-0:2.7.0(00.000*kW)",
    "1-0:3.7.0(00.031*kvar)",
    "1-0:4.7.0(00.402*kvar)",
    "0-0:17.0.0(027.6*kVA)",
    "1-0:9.7.0(01.566*kVA)",
    "1-0:10.7.0(00.000*kVA)",
    "1-1:31.4.0(040*A)(-040*A)",
    "0-0:96.3.10(1)",
    "0-1:96.3.10(0)",
    "0-2:96.3.10(0)",
    "0-0:96.7.21(00011)",
    "1-0:32.32.0(00004)",
    "1-0:52.32.0(00003)",
    "1-0:72.32.0(00005)",
    "1-0:32.36.0(00001)",
    "1-0:52.36.0(00000)",
    "1-0:72.36.0(00001)",
    "0-0:96.13.0()",
    "0-0:96.13.2()",
    "0-0:96.13.3()",
    "0-0:96.13.4()",
    "0-0:96.13.5()",
    "1-0:32.7.0(232.0*V)",
    "1-0:52.7.0(231.0*V)",
    "1-0:72.7.0(233.0*V)",
    "1-0:31.7.0(002*A)",
    "1-0:51.7.0(003*A)",
    "1-0:71.7.0(002*A)",
    "1-0:21.7.0(00.482*kW)",
    "1-0:41.7.0(00.641*kW)",
    "1-0:61.7.0(00.389*kW)",
    "1-0:22.7.0(00.000*kW)",
    "1-0:42.7.0(00.000*kW)",
    "1-0:62.7.0(00.000*kW)",
]))

# --- Swedish HAN style: no version line, totals with eight integer digits, reactive registers. ----------------
add("other_swedish.txt", telegram("ADN9 6534", [
    "0-0:1.0.0(240117143504W)",
    "1-0:1.8.0(00006678.394*kWh)",
    "1-0:2.8.0(00000000.000*kWh)",
    "1-0:3.8.0(00000021.988*kvarh)",
    "1-0:4.8.0(00001020.971*kvarh)",
    "1-0:1.7.0(0001.727*kW)",
    "1-0:2.7.0(0000.000*kW)",
    "1-0:3.7.0(0000.000*kvar)",
    "1-0:4.7.0(0000.309*kvar)",
    "1-0:21.7.0(0001.023*kW)",
    "1-0:41.7.0(0000.350*kW)",
    "1-0:61.7.0(0000.353*kW)",
    "1-0:22.7.0(0000.000*kW)",
    "1-0:42.7.0(0000.000*kW)",
    "1-0:62.7.0(0000.000*kW)",
    "1-0:23.7.0(0000.000*kvar)",
    "1-0:43.7.0(0000.000*kvar)",
    "1-0:63.7.0(0000.000*kvar)",
    "1-0:24.7.0(0000.009*kvar)",
    "1-0:44.7.0(0000.161*kvar)",
    "1-0:64.7.0(0000.138*kvar)",
    "1-0:32.7.0(240.3*V)",
    "1-0:52.7.0(240.1*V)",
    "1-0:72.7.0(241.3*V)",
    "1-0:31.7.0(004.2*A)",
    "1-0:51.7.0(001.6*A)",
    "1-0:71.7.0(001.7*A)",
]))

# --- Austrian style (Sagemcom T210-D-r): version 50 but energy in Wh, power in W, reactive in varh/var. -------
add("other_austrian_wh.txt", telegram("EST5\\253710000_A", [
    "1-3:0.2.8(50)",
    "0-0:1.0.0(" + tst(2022, 10, 6, 15, 50, 14) + ")",
    "0-0:96.1.0(4543353031313236)",
    "1-0:1.8.0(000006545766*Wh)",
    "1-0:1.8.1(000005017120*Wh)",
    "1-0:1.8.2(000001528646*Wh)",
    "1-0:2.8.0(000000000058*Wh)",
    "1-0:2.8.1(000000000000*Wh)",
    "1-0:2.8.2(000000000058*Wh)",
    "1-0:3.8.0(000000000162*varh)",
    "1-0:4.8.0(000003233354*varh)",
    "1-0:1.7.0(000000286*W)",
    "1-0:2.7.0(000000000*W)",
    "1-0:3.7.0(000000000*var)",
    "1-0:4.7.0(000000189*var)",
    "0-0:96.14.0(0001)",
]))


# ---------------------------------------------------------------------------------------------------------------
# Streams.

def noise(rng: random.Random, n: int, low=0, high=255) -> bytes:
    """Random bytes with no `/` and no `DB 08` pair."""
    out = bytearray()
    while len(out) < n:
        b = rng.randint(low, high)
        if b == 0x2F or (b == 0x08 and out and out[-1] == 0xDB):
            continue
        out.append(b)
    return bytes(out)


def flip_digit(t: bytes) -> bytes:
    """Flips one value digit of a telegram (`1` ↔ `3`), which its CRC must catch."""
    at = t.index(b"1-0:1.8.1(") + len(b"1-0:1.8.1(") + 3
    assert t[at:at + 1].isdigit()
    return t[:at] + bytes([t[at] ^ 0x02]) + t[at + 1:]


def long_line_telegram() -> bytes:
    """A DSMR 5 telegram with a 64 KiB text message line (valid CRC, but far over the 8 KiB frame cap)."""
    return telegram("ISK5\\2M550T-1012", [
        "1-3:0.2.8(50)",
        "0-0:96.13.0(" + "41" * 32768 + ")",
        "1-0:1.7.0(00.100*kW)",
    ])


def build_streams():
    t = CORPUS
    rng = random.Random(20240617)
    streams = {}
    ascii_junk = lambda n: noise(rng, n, 0x20, 0x7E)  # noqa: E731

    streams["garbage_between.bin"] = (
        [ascii_junk(300), t["dsmr5_3phase_gas_water.txt"], ascii_junk(57), t["belgian_13months.txt"],
         b"\r\n\r\nxx!!!ABCD\r\n", t["dsmr50_1phase.txt"], ascii_junk(11)],
        ["dsmr5_3phase_gas_water.txt", "belgian_13months.txt", "dsmr50_1phase.txt"], 0)

    cut = t["dsmr42_3phase.txt"]
    streams["truncated_then_good.bin"] = (
        [cut[:len(cut) // 2], t["dsmr42_3phase.txt"], cut[:40], t["belgian_1phase.txt"], cut[: cut.rindex(b"!")]],
        ["dsmr42_3phase.txt", "belgian_1phase.txt"], 0)

    streams["flipped_byte.bin"] = (
        [flip_digit(t["dsmr5_3phase_gas_water.txt"]), t["dsmr5_3phase_gas_water.txt"],
         flip_digit(t["belgian_13months.txt"]), t["luxembourg_smarty.txt"]],
        ["dsmr5_3phase_gas_water.txt", "luxembourg_smarty.txt"], 2)

    streams["nul_ff_runs.bin"] = (
        [b"\x00" * 4096, t["dsmr50_solar.txt"], b"\x00", b"\xff" * 3000, t["dsmr50_heat.txt"], b"\x00" * 17,
         b"\xff\x00" * 500, t["other_swedish.txt"], b"\x00"],
        ["dsmr50_solar.txt", "dsmr50_heat.txt", "other_swedish.txt"], 0)

    streams["non_ascii_noise.bin"] = (
        [noise(rng, 2000, 0x80, 0xFF), t["dsmr50_message_failures.txt"], noise(rng, 777, 0x80, 0xFF),
         "Zählerstand ☀ – ok\r\n".encode("utf-8"), t["dsmr50_star255_crc3.txt"], noise(rng, 5000),
         t["other_austrian_wh.txt"], noise(rng, 64)],
        ["dsmr50_message_failures.txt", "dsmr50_star255_crc3.txt", "other_austrian_wh.txt"], 0)

    streams["long_line.bin"] = (
        [t["dsmr40.txt"], long_line_telegram(), t["dsmr42_1phase.txt"]],
        ["dsmr40.txt", "dsmr42_1phase.txt"], 0)

    streams["dsmr22_30_no_crc.bin"] = (
        [ascii_junk(20), t["dsmr22.txt"], t["dsmr30.txt"], b"\r\n", t["dsmr22.txt"]],
        ["dsmr22.txt", "dsmr30.txt", "dsmr22.txt"], 0)

    # Every corpus telegram once, in name order, with a little noise between them.
    names = sorted(t)
    parts = []
    for name in names:
        parts.append(noise(rng, rng.randint(0, 40)))
        parts.append(t[name])
    streams["all_corpus.bin"] = (parts, names, 0)
    return streams


def write(path: str, data: bytes):
    with open(path, "wb") as f:
        f.write(data)


def main():
    for name, data in CORPUS.items():
        assert len(data) <= MAX_TELEGRAM_BYTES, name
        write(os.path.join(HERE, name), data)
    os.makedirs(os.path.join(HERE, "streams"), exist_ok=True)
    expected = {
        "_about": "Per stream: valid telegrams (CRC ok or absent) and CRC failures a framer with a "
                  + str(MAX_TELEGRAM_BYTES) + "-byte cap must find; `valid` names the corpus file of each valid "
                  "telegram, in order. Written by make_corpus.py.",
    }
    for name, (parts, valid, crc_failures) in build_streams().items():
        data = b"".join(parts)
        write(os.path.join(HERE, "streams", name), data)
        expected[name] = {
            "bytes": len(data),
            "telegrams": len(valid),
            "crc_failures": crc_failures,
            "max_telegram_bytes": MAX_TELEGRAM_BYTES,
            "valid": valid,
        }
    with open(os.path.join(HERE, "streams", "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    print("wrote %d telegrams and %d streams" % (len(CORPUS), len(expected) - 1))


if __name__ == "__main__":
    main()
