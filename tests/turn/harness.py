#!/usr/bin/env python3
"""Black-box TURN checks against a running TURN server (Python 3 standard library only).

Relaying is driven with coturn's client tools (Debian package `coturn`): turnutils_stunclient
for STUN Binding and turnutils_uclient for allocations that carry traffic to an echo peer
(turnutils_peer, started by the caller). The peer-address policy is probed with the small
STUN/TURN client in this file: it allocates a relay (long-term credentials, optionally an IPv6
relay via REQUESTED-ADDRESS-FAMILY), asks for CreatePermission and ChannelBind towards each
address that must be refused, and releases the allocation. Those requests only create state on
the server; no packet is ever sent to the probed addresses.

Credentials follow the TURN REST scheme: username `<expiry>[:<user>]`, password
base64(HMAC-SHA1(secret, username)). The harness computes them itself for the REST and
refusal checks, and lets uclient derive them from the secret (-W) elsewhere.

Every check prints one line `PASS|FAIL|SKIP  name  detail`, then one SUMMARY line; the exit
status is 1 if any check failed (2 on a usage error or a missing tool). Raw output of every
check is kept under --log-dir. The secret is never printed; in the logs the uclient command
lines have their secret and password replaced by `<redacted>`.

A check that can only pass is worthless, so:
  - relay checks need messages in both directions (sent through the relay to the peer and
    echoed back), the expected number of messages sent and loss within the limit;
  - credential refusals count only once a good allocation on the same server succeeded in this
    run (otherwise FAIL), and the harness's own client must read error 401 itself;
  - peer refusals need the allocation to have succeeded first, error 403 on both
    CreatePermission and ChannelBind, and a control peer that the same allocation is allowed to
    reach (so a broken encoding, which the server would refuse too, cannot look like a pass);
  - with --accepted-peer (an address the main server is configured to allow), `probe_can_fail`
    feeds that address to the probe as if it were forbidden and requires the probe to report it
    as ACCEPTED, i.e. a hole in the policy would turn the peer_policy_* checks red.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import fnmatch
import hashlib
import hmac
import ipaddress
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------------------------
# STUN / TURN wire format (RFC 8489, RFC 8656)

COOKIE = 0x2112A442

BINDING, ALLOCATE, REFRESH, CREATE_PERMISSION, CHANNEL_BIND = 0x001, 0x003, 0x004, 0x008, 0x009
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3

ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_CHANNEL_NUMBER = 0x000C
ATTR_LIFETIME = 0x000D
ATTR_XOR_PEER_ADDRESS = 0x0012
ATTR_REALM = 0x0014
ATTR_NONCE = 0x0015
ATTR_XOR_RELAYED_ADDRESS = 0x0016
ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017
ATTR_REQUESTED_TRANSPORT = 0x0019
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_FINGERPRINT = 0x8028

FINGERPRINT_XOR = 0x5354554E
UDP_PROTOCOL = 17
FIRST_CHANNEL = 0x4000


class ProtocolError(Exception):
    """The server's answer is missing, malformed or fails an integrity check."""


def message_type(method: int, cls: int) -> int:
    # The 12 method bits are split around the two class bits (C0 at bit 4, C1 at bit 8).
    return ((method & 0x0F80) << 2) | ((method & 0x0070) << 1) | (method & 0x000F) \
        | ((cls & 0b10) << 7) | ((cls & 0b01) << 4)


def split_message_type(value: int) -> tuple[int, int]:
    method = ((value & 0x3E00) >> 2) | ((value & 0x00E0) >> 1) | (value & 0x000F)
    cls = ((value >> 7) & 0b10) | ((value >> 4) & 0b01)
    return method, cls


def tlv(kind: int, value: bytes) -> bytes:
    padding = b"\0" * (-len(value) % 4)
    return struct.pack("!HH", kind, len(value)) + value + padding


def xor_address(ip: str, port: int, txid: bytes) -> bytes:
    """XOR-*-ADDRESS value: the port is XORed with the cookie's top half, an IPv4 address
    with the cookie, an IPv6 address with cookie + transaction id."""
    addr = ipaddress.ip_address(ip)
    mask = struct.pack("!I", COOKIE) + txid
    raw = bytes(a ^ m for a, m in zip(addr.packed, mask))
    family = 0x01 if addr.version == 4 else 0x02
    return struct.pack("!BBH", 0, family, port ^ (COOKIE >> 16)) + raw


def parse_xor_address(value: bytes, txid: bytes) -> tuple[str, int]:
    if len(value) < 8:
        raise ProtocolError("address attribute too short")
    family, xport = value[1], struct.unpack("!H", value[2:4])[0]
    size = {0x01: 4, 0x02: 16}.get(family)
    if size is None or len(value) < 4 + size:
        raise ProtocolError(f"address attribute with family {family:#x} and {len(value)} bytes")
    mask = struct.pack("!I", COOKIE) + txid
    raw = bytes(a ^ m for a, m in zip(value[4:4 + size], mask))
    return str(ipaddress.ip_address(raw)), xport ^ (COOKIE >> 16)


def with_length(head: bytes, length: int) -> bytes:
    """The 20-byte header `head` with its length field replaced."""
    return head[:2] + struct.pack("!H", length) + head[4:20]


def encode(method: int, cls: int, txid: bytes, attrs: list[bytes], key: bytes | None) -> bytes:
    """A message with `attrs`, then MESSAGE-INTEGRITY (when a key is given) and FINGERPRINT.
    Each of the two covers the message up to itself, with a length field that already counts
    the attribute being added."""
    body = b"".join(attrs)
    head = struct.pack("!HHI", message_type(method, cls), 0, COOKIE) + txid
    if key is not None:
        mac = hmac.new(key, with_length(head, len(body) + 24) + body, hashlib.sha1).digest()
        body += tlv(ATTR_MESSAGE_INTEGRITY, mac)
    crc = binascii.crc32(with_length(head, len(body) + 8) + body) ^ FINGERPRINT_XOR
    body += tlv(ATTR_FINGERPRINT, struct.pack("!I", crc))
    return with_length(head, len(body)) + body


@dataclass
class Message:
    method: int
    cls: int
    txid: bytes
    raw: bytes
    attrs: list[tuple[int, int, bytes]]  # (type, offset of the attribute in raw, value)

    @classmethod
    def decode(cls, raw: bytes) -> "Message":
        if len(raw) < 20 or raw[0] & 0xC0:
            raise ProtocolError("not a STUN message")
        kind, length, cookie = struct.unpack("!HHI", raw[:8])
        if cookie != COOKIE or length % 4 or 20 + length > len(raw):
            raise ProtocolError("bad STUN header")
        raw = raw[:20 + length]
        attrs, pos = [], 20
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise ProtocolError("truncated attribute header")
            atype, alen = struct.unpack("!HH", raw[pos:pos + 4])
            if pos + 4 + alen > len(raw):
                raise ProtocolError(f"attribute {atype:#06x} runs past the message")
            attrs.append((atype, pos, raw[pos + 4:pos + 4 + alen]))
            pos += 4 + alen + (-alen % 4)
        method, mclass = split_message_type(kind)
        return cls(method, mclass, raw[8:20], raw, attrs)

    def get(self, kind: int) -> bytes | None:
        return next((value for atype, _, value in self.attrs if atype == kind), None)

    def offset(self, kind: int) -> int | None:
        return next((pos for atype, pos, _ in self.attrs if atype == kind), None)

    def error(self) -> tuple[int, str] | None:
        value = self.get(ATTR_ERROR_CODE)
        if value is None or len(value) < 4:
            return None
        return (value[2] & 0x07) * 100 + value[3], value[4:].decode("utf-8", "replace").strip()

    def fingerprint_ok(self) -> bool | None:
        """None when there is no FINGERPRINT, else whether it is last and correct."""
        pos = self.offset(ATTR_FINGERPRINT)
        if pos is None:
            return None
        if pos + 8 != len(self.raw):
            return False
        want = binascii.crc32(with_length(self.raw, pos + 8 - 20) + self.raw[20:pos]) ^ FINGERPRINT_XOR
        return struct.unpack("!I", self.raw[pos + 4:pos + 8])[0] == want

    def integrity_ok(self, key: bytes) -> bool | None:
        """None when there is no MESSAGE-INTEGRITY, else whether the HMAC matches `key`."""
        pos = self.offset(ATTR_MESSAGE_INTEGRITY)
        if pos is None:
            return None
        covered = with_length(self.raw, pos + 24 - 20) + self.raw[20:pos]
        want = hmac.new(key, covered, hashlib.sha1).digest()
        return hmac.compare_digest(want, self.raw[pos + 4:pos + 24])

    def describe(self) -> str:
        if self.cls == SUCCESS:
            return "success"
        err = self.error()
        return f"error {err[0]} {err[1]}".strip() if err else f"class {self.cls} without ERROR-CODE"


def rest_credentials(secret: str, ttl: int, user: str) -> tuple[str, str]:
    """TURN REST username (`<expiry>:<user>`, or just `<expiry>` when `user` is empty) and its
    password base64(HMAC-SHA1(secret, username))."""
    expiry = int(time.time()) + ttl
    username = f"{expiry}:{user}" if user else str(expiry)
    mac = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(mac).decode()


class TurnClient:
    """One UDP 5-tuple to the server: Binding, and one allocation with long-term credentials."""

    def __init__(self, host: str, port: int, username: str = "", password: str = "",
                 log=None, rto: float = 0.25, tries: int = 5):
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.connect((host, port))
        self.username, self.password = username, password
        self.realm = self.nonce = None
        self.key = None
        self.rto, self.tries = rto, tries
        self.log = log or (lambda line: None)
        self.channel = FIRST_CHANNEL

    def close(self):
        self.sock.close()

    def local_address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def transact(self, method: int, attrs: list[bytes], txid: bytes | None = None,
                 authenticate: bool = False) -> Message:
        """Send a request (retransmitted with back-off over UDP) and return the answer that
        carries its transaction id, after checking its FINGERPRINT and, on a success answer
        to an authenticated request, its MESSAGE-INTEGRITY."""
        txid = txid or os.urandom(12)
        if authenticate:
            attrs = attrs + [tlv(ATTR_USERNAME, self.username.encode()), tlv(ATTR_REALM, self.realm),
                             tlv(ATTR_NONCE, self.nonce)]
        packet = encode(method, REQUEST, txid, attrs, self.key if authenticate else None)
        wait = self.rto
        for _ in range(self.tries):
            try:
                self.sock.send(packet)
            except ConnectionRefusedError:
                raise ProtocolError("ICMP port unreachable: nothing listens there") from None
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                try:
                    data = self.sock.recv(65535)
                except socket.timeout:
                    break
                except ConnectionRefusedError:
                    raise ProtocolError("ICMP port unreachable: nothing listens there") from None
                try:
                    answer = Message.decode(data)
                except ProtocolError:
                    continue
                if answer.txid != txid or answer.cls not in (SUCCESS, ERROR):
                    continue
                if answer.method != method:
                    raise ProtocolError(f"answer of method {answer.method:#x} to {method:#x}")
                if answer.fingerprint_ok() is False:
                    raise ProtocolError("answer with a wrong FINGERPRINT")
                if authenticate and answer.cls == SUCCESS and answer.integrity_ok(self.key) is not True:
                    raise ProtocolError("success answer without a valid MESSAGE-INTEGRITY")
                return answer
            wait *= 2
        raise ProtocolError(f"no answer to method {method:#x} after {self.tries} tries")

    def request(self, method: int, attrs: list[bytes], txid_for=None) -> Message:
        """An authenticated request; a stale nonce (438) is replaced and the request sent once
        more. `txid_for(txid)` builds attributes that depend on the transaction id."""
        for _ in range(2):
            txid = os.urandom(12)
            extra = txid_for(txid) if txid_for else []
            answer = self.transact(method, attrs + extra, txid=txid, authenticate=True)
            err = answer.error()
            if answer.cls == ERROR and err and err[0] == 438 and answer.get(ATTR_NONCE):
                self.nonce = answer.get(ATTR_NONCE)
                continue
            return answer
        return answer

    def binding(self) -> tuple[str, int]:
        answer = self.transact(BINDING, [])
        value = answer.get(ATTR_XOR_MAPPED_ADDRESS)
        if answer.cls != SUCCESS or value is None:
            raise ProtocolError(f"Binding answered {answer.describe()} without XOR-MAPPED-ADDRESS")
        return parse_xor_address(value, answer.txid)

    def allocate(self, ipv6: bool = False) -> Message:
        """Allocate a UDP relay. The first, unauthenticated request must be challenged with
        401 + REALM + NONCE; the answer to the authenticated one is returned as it is."""
        attrs = [tlv(ATTR_REQUESTED_TRANSPORT, bytes([UDP_PROTOCOL, 0, 0, 0]))]
        if ipv6:
            attrs.append(tlv(ATTR_REQUESTED_ADDRESS_FAMILY, bytes([0x02, 0, 0, 0])))
        challenge = self.transact(ALLOCATE, attrs)
        err = challenge.error()
        if challenge.cls != ERROR or not err or err[0] != 401:
            raise ProtocolError(f"unauthenticated Allocate answered {challenge.describe()}, not 401")
        self.realm, self.nonce = challenge.get(ATTR_REALM), challenge.get(ATTR_NONCE)
        if self.realm is None or self.nonce is None:
            raise ProtocolError("401 challenge without REALM or NONCE")
        self.key = hashlib.md5(f"{self.username}:{self.realm.decode()}:{self.password}".encode()).digest()
        answer = self.request(ALLOCATE, attrs)
        self.log(f"Allocate (username {self.username}, {'IPv6' if ipv6 else 'IPv4'} relay): "
                 f"{answer.describe()}")
        return answer

    def relayed_address(self, answer: Message) -> tuple[str, int]:
        value = answer.get(ATTR_XOR_RELAYED_ADDRESS)
        if value is None:
            raise ProtocolError("Allocate success without XOR-RELAYED-ADDRESS")
        return parse_xor_address(value, answer.txid)

    @staticmethod
    def peer_attr(peer: str, port: int):
        # the IPv6 form of XOR-PEER-ADDRESS depends on the transaction id of its request
        return lambda txid: [tlv(ATTR_XOR_PEER_ADDRESS, xor_address(peer, port, txid))]

    def create_permission(self, peer: str, port: int) -> Message:
        return self.request(CREATE_PERMISSION, [], txid_for=self.peer_attr(peer, port))

    def channel_bind(self, peer: str, port: int) -> Message:
        """ChannelBind on the next unused channel number."""
        number = self.channel
        self.channel += 1
        return self.request(CHANNEL_BIND, [tlv(ATTR_CHANNEL_NUMBER, struct.pack("!HH", number, 0))],
                            txid_for=self.peer_attr(peer, port))

    def release(self):
        """Refresh with LIFETIME 0 deletes the allocation."""
        try:
            self.request(REFRESH, [tlv(ATTR_LIFETIME, struct.pack("!I", 0))])
        except ProtocolError:
            pass


# --------------------------------------------------------------------------------------------
# turnutils_uclient runs and their final statistics

@dataclass
class Stats:
    sessions: int = 0          # msz= of the last per-second line: sessions (RTP + RTCP count 2)
    sent: int = 0              # tot_send_msgs
    received: int = 0          # tot_recv_msgs: messages that came back from the echo peer
    sent_bytes: int = 0
    received_bytes: int = 0
    loss_pct: float | None = None
    rtt: str = "n/a"
    jitter: str = "n/a"
    complete: bool = False     # the final statistics block was printed


def parse_stats(text: str) -> Stats:
    s = Stats()

    def last(pattern: str):
        """The last match of `pattern` (its groups), or None: uclient prints running totals
        every second and the final ones at the end."""
        found = re.findall(pattern, text, re.M)
        return found[-1] if found else None

    if (m := last(r"msz=(\d+),")) is not None:
        s.sessions = int(m)
    if (m := last(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)$")) is not None:
        s.sent, s.received = map(int, m)
    if (m := last(r"tot_send_bytes ~ (\d+), tot_recv_bytes ~ (\d+)$")) is not None:
        s.sent_bytes, s.received_bytes = map(int, m)
    if (m := last(r"Total lost packets \d+ \(([\d.]+)%\)")) is not None:
        s.loss_pct = float(m)
        s.complete = True
    if (m := last(r"Average round trip delay ([\d.]+) ms; min = (\d+) ms, max = (\d+) ms")) is not None:
        s.rtt = f"{float(m[0]):.2f} ms (min {m[1]}, max {m[2]})"
    if (m := last(r"Average jitter ([\d.]+) ms")) is not None:
        s.jitter = f"{float(m):.2f} ms"
    return s


@dataclass
class Run:
    rc: int
    text: str
    log: Path
    wall: float
    stats: Stats = field(default_factory=Stats)

    def first_error(self) -> str:
        for pattern in (r"error \d{3}[^\n]*", r"(?:ERROR|[Ee]rror|[Cc]annot)[^\n]*"):
            if m := re.search(pattern, self.text):
                return m.group(0).strip()
        return "no error text"

    def allocated(self) -> bool:
        return "Received relay addr" in self.text


def redact(args: list[str]) -> list[str]:
    out, hide = [], False
    for a in args:
        out.append("<redacted>" if hide else a)
        hide = a in ("-W", "-w")
    return out


# --------------------------------------------------------------------------------------------
# the checks

class Harness:
    def __init__(self, opt):
        self.opt = opt
        self.secret = Path(opt.secret_file).read_text().splitlines()[0].strip()
        self.logs = Path(opt.log_dir)
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.good_allocation = False  # uclient allocated and relayed on the main server
        self.tls = ["-E", opt.ca_file] if opt.ca_file else []

    # ---- reporting
    def wanted(self, name: str) -> bool:
        return not self.opt.only or any(fnmatch.fnmatch(name, p) for p in self.opt.only)

    def result(self, status: str, name: str, detail: str):
        self.counts[status] += 1
        print(f"{status:<4}  {name:<28} {detail}", flush=True)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # ---- uclient
    def uclient(self, name: str, args: list[str], timeout: float | None = None) -> Run:
        cmd = ["turnutils_uclient", "-v", *args]
        log = self.log_path(name)
        start = time.monotonic()
        try:
            done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=timeout or self.opt.uclient_timeout)
            rc, text = done.returncode, done.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as e:
            rc, text = -1, (e.stdout or b"").decode("utf-8", "replace") + "\nharness: timed out\n"
        wall = time.monotonic() - start
        log.write_text(text + f"\n# rc={rc} wall={wall:.2f}s: {' '.join(redact(cmd))}\n")
        return Run(rc, text, log, wall, parse_stats(text))

    def auth(self, secret: str | None = None) -> list[str]:
        return ["-W", secret or self.secret, "-u", self.opt.user]

    def traffic(self, peer: str | None = None, msgs: int | None = None) -> list[str]:
        return ["-e", peer or self.opt.peer_addr, "-r", str(self.opt.peer_port),
                "-n", str(msgs or self.opt.msgs), "-l", str(self.opt.msg_len)]

    def judge_relay(self, run: Run, expected: int, max_loss: float) -> tuple[str, str]:
        s = run.stats
        where = f"[log {run.log}]"
        if run.rc != 0:
            return "FAIL", f"uclient rc={run.rc}: {run.first_error()} {where}"
        if not s.complete:
            return "FAIL", f"no final statistics from uclient {where}"
        if s.sent == 0 or s.received == 0:
            return "FAIL", f"no traffic both ways (sent={s.sent} recv={s.received}) {where}"
        if s.sent < expected:
            return "FAIL", f"sent only {s.sent} of {expected} messages {where}"
        # uclient's own loss figure, and the share of expected echoes that never came back
        missing = max(0.0, 100.0 * (expected - s.received) / expected)
        loss = max(s.loss_pct or 0.0, missing)
        if loss > max_loss:
            return "FAIL", f"loss {loss:.2f}% > {max_loss}% (sent={s.sent} recv={s.received}) {where}"
        return "PASS", f"sent={s.sent} recv={s.received} loss={loss:.2f}% rtt {s.rtt} jitter {s.jitter}"

    def relay_check(self, name: str, args: list[str], main_udp: bool = False):
        """uclient relays --msgs messages to the echo peer; `main_udp` marks a run over UDP to
        the main server, whose success makes the credential refusals meaningful."""
        if not self.wanted(name):
            return
        run = self.uclient(name, args)
        status, detail = self.judge_relay(run, self.opt.msgs, self.opt.max_loss)
        if status == "PASS" and main_udp:
            self.good_allocation = True
        self.result(status, name, detail)

    def judge_refusal(self, run: Run, marker: str, needs_allocation: bool) -> tuple[str, str]:
        where = f"[log {run.log}]"
        found = re.search(marker, run.text)
        if run.rc == 0 or run.stats.received > 0:
            return "FAIL", (f"server ACCEPTED (rc={run.rc} sent={run.stats.sent} "
                            f"recv={run.stats.received}) {where}")
        if needs_allocation and not run.allocated():
            return "FAIL", f"the allocation itself failed ({run.first_error()}): proves nothing {where}"
        if not found:
            return "FAIL", f"failed, but not with /{marker}/: {run.first_error()} {where}"
        return "PASS", f"refused: '{found.group(0).strip()}' (uclient rc={run.rc})"

    def refusal_check(self, name: str, marker: str, args: list[str], needs_allocation: bool):
        if not self.wanted(name):
            return
        run = self.uclient(name, args)
        status, detail = self.judge_refusal(run, marker, needs_allocation)
        self.result(status, name, detail)

    # ---- own client: credentials
    def own_401(self, name: str, username: str, password: str) -> tuple[bool, str]:
        """A good allocation with fresh REST credentials (released at once), then the given
        credentials, which must be answered 401. Returns (ok, description)."""
        lines = []
        good_user, good_pw = rest_credentials(self.secret, 600, self.opt.user)
        good = TurnClient(self.opt.host, self.opt.udp_port, good_user, good_pw, log=lines.append)
        bad = TurnClient(self.opt.host, self.opt.udp_port, username, password, log=lines.append)
        try:
            answer = good.allocate()
            if answer.cls != SUCCESS:
                return False, f"control allocation with good credentials: {answer.describe()}"
            good.release()
            answer = bad.allocate()
            err = answer.error()
            if answer.cls == ERROR and err and err[0] == 401:
                return True, "own client: 401"
            if answer.cls == SUCCESS:
                bad.release()
                return False, "own client: server ACCEPTED"
            return False, f"own client: {answer.describe()}, not 401"
        except ProtocolError as e:
            return False, f"own client: {e}"
        finally:
            good.close()
            bad.close()
            with self.log_path(name).open("a") as f:
                f.write("".join(f"own client: {line}\n" for line in lines))

    def credential_refusal(self, name: str, uclient_args: list[str], username: str, password: str):
        if not self.wanted(name):
            return
        if not self.good_allocation:
            self.result("FAIL", name, "no good allocation earlier in this run (udp_relay_channel): "
                        "a refusal would prove nothing")
            return
        run = self.uclient(name, uclient_args)
        status, detail = self.judge_refusal(run, r"Cannot complete Allocation", needs_allocation=False)
        ok, own = self.own_401(name, username, password)
        if status == "PASS" and not ok:
            status, detail = "FAIL", f"{own} [log {run.log}]"
        elif status == "PASS":
            detail = f"{detail}; {own}"
        self.result(status, name, detail)

    # ---- own client: peer policy
    def probe(self, log: Path, host: str, port: int, ipv6: bool, peers: list[str], control: str | None):
        """Returns (status, detail). See the module docstring for what makes it PASS."""
        lines: list[str] = []
        user, password = rest_credentials(self.secret, 600, self.opt.user)
        client = TurnClient(host, port, user, password, log=lines.append)
        pport = self.opt.peer_port

        def outcome(peer: str) -> tuple[str, str]:
            results = []
            asks = (("CreatePermission", client.create_permission), ("ChannelBind", client.channel_bind))
            for label, ask in asks:
                try:
                    results.append((label, ask(peer, pport)))
                except ProtocolError as e:
                    lines.append(f"peer {peer}: {label}: {e}")
                    return "NO ANSWER", str(e)
            text = ", ".join(f"{label}={answer.describe()}" for label, answer in results)
            if any(answer.cls == SUCCESS for _, answer in results):
                return "ACCEPTED", text
            if all((answer.error() or (0,))[0] == 403 for _, answer in results):
                return "refused", text
            return "UNEXPECTED", text

        allocated = False
        try:
            answer = client.allocate(ipv6=ipv6)
            if answer.cls != SUCCESS:
                return "FAIL", f"Allocate answered {answer.describe()}: nothing probed"
            allocated = True
            relay_ip, relay_port = client.relayed_address(answer)
            lines.append(f"relayed address {relay_ip} port {relay_port}")
            if (ipaddress.ip_address(relay_ip).version == 6) != ipv6:
                return "FAIL", f"asked for an {'IPv6' if ipv6 else 'IPv4'} relay, got {relay_ip}"
            control_note = "no control peer"
            if control:
                verdict, text = outcome(control)
                lines.append(f"control peer {control}: {verdict} [{text}]")
                if verdict != "ACCEPTED" or "error" in text:
                    return "FAIL", (f"control peer {control} not accepted ({text}): the probe or the "
                                    f"server is broken, refusals would prove nothing")
                control_note = f"control {control} accepted"
            bad = []
            for peer in peers:
                verdict, text = outcome(peer)
                good = verdict == "refused"
                lines.append(f"peer {peer}: {verdict} [{text}] {'OK' if good else 'MISMATCH'}")
                if not good:
                    bad.append(f"{peer} {verdict}")
            if bad:
                return "FAIL", f"MISMATCH {len(bad)}/{len(peers)}: {'; '.join(bad)} [log {log}]"
            return "PASS", (f"{len(peers)}/{len(peers)} refused with 403 on CreatePermission and "
                            f"ChannelBind ({' '.join(peers)}); {control_note}")
        except ProtocolError as e:
            return "FAIL", f"probe could not run: {e} [log {log}]"
        finally:
            if allocated:
                client.release()
            client.close()
            log.write_text("".join(line + "\n" for line in lines))

    def probe_check(self, name: str, host: str, port: int, ipv6: bool, peers: list[str]):
        if not self.wanted(name):
            return
        if not peers:
            self.result("SKIP", name, "empty peer list")
            return
        control = self.opt.control_peer_v6 if ipv6 else self.opt.control_peer_v4
        status, detail = self.probe(self.log_path(name), host, port, ipv6, peers, control)
        self.result(status, name, detail)

    # ---- the run
    def run(self) -> int:
        o = self.opt
        t0 = time.monotonic()
        print(f"TURN harness: {o.host} udp/{o.udp_port} tcp/{o.tcp_port or '-'} tls/{o.tls_port or '-'} "
              f"dtls/{o.dtls_port or '-'} strict {o.strict_host or '-'}:{o.strict_port or '-'} "
              f"peer {o.peer_addr}:{o.peer_port} logs {self.logs}", flush=True)
        host, udp = o.host, ["-p", str(o.udp_port), o.host]

        if self.wanted("stun_binding_udp"):
            self.stun_binding()

        # UDP client transport, three ways of relaying
        self.relay_check("udp_relay_channel", ["-c", *self.auth(), *self.traffic(), *udp], main_udp=True)
        self.relay_check("udp_relay_send_indication", ["-c", "-s", *self.auth(), *self.traffic(), *udp],
                         main_udp=True)
        if self.wanted("udp_rtp_rtcp_pair"):
            self.rtp_rtcp_pair(udp)

        # other client transports, all with a UDP relay
        if o.tcp_port:
            self.relay_check("tcp_transport",
                             ["-t", "-c", *self.auth(), *self.traffic(), "-p", str(o.tcp_port), host])
        elif self.wanted("tcp_transport"):
            self.result("SKIP", "tcp_transport", "no --tcp-port")
        if o.tls_port and o.tls_port_accepts_tcp:
            self.relay_check("tcp_on_tls_port",
                             ["-t", "-c", *self.auth(), *self.traffic(), "-p", str(o.tls_port), host])
        elif self.wanted("tcp_on_tls_port"):
            self.result("SKIP", "tcp_on_tls_port", "TLS port not declared to accept plain TCP")
        if o.tls_port:
            self.relay_check("tls_transport", ["-t", "-S", *self.tls, "-c", *self.auth(), *self.traffic(),
                                               "-p", str(o.tls_port), host])
        elif self.wanted("tls_transport"):
            self.result("SKIP", "tls_transport", "no --tls-port")
        if o.dtls_port:
            self.relay_check("dtls_transport", ["-S", *self.tls, "-c", *self.auth(), *self.traffic(),
                                                "-p", str(o.dtls_port), host])
        elif self.wanted("dtls_transport"):
            self.result("SKIP", "dtls_transport", "no --dtls-port")

        # REST credentials computed here, in both username forms
        for name, user in (("rest_cred_expiry_user", o.user), ("rest_cred_expiry_only", "")):
            username, password = rest_credentials(self.secret, 600, user)
            self.relay_check(name, ["-c", "-u", username, "-w", password, *self.traffic(), *udp],
                             main_udp=True)

        # credentials that must be refused
        wrong = "wrong-" + self.secret
        username, password = rest_credentials(wrong, 600, o.user)
        self.credential_refusal("reject_wrong_secret",
                                ["-c", *self.auth(wrong), *self.traffic(msgs=5), *udp], username, password)
        username, password = rest_credentials(self.secret, -60, o.user)
        self.credential_refusal("reject_expired_cred", ["-c", "-u", username, "-w", password,
                                                        *self.traffic(msgs=5), *udp], username, password)

        # peers that must be refused on the main server
        self.refusal_check("reject_peer_0.0.0.0", r"error 403[^\n]*",
                           ["-c", *self.auth(), *self.traffic(peer="0.0.0.0", msgs=5), *udp],
                           needs_allocation=True)
        self.probe_check("peer_policy_ipv4", host, o.udp_port, False, o.forbidden_v4.split())
        self.probe_check("peer_policy_ipv6", host, o.udp_port, True, o.forbidden_v6.split())
        if self.wanted("probe_can_fail"):
            self.probe_can_fail()

        # the production peer policy: loopback refused too
        if o.strict_host and o.strict_port:
            sudp = ["-p", str(o.strict_port), o.strict_host]
            self.refusal_check("strict_loopback_relay", r"error 403[^\n]*",
                               ["-c", *self.auth(), *self.traffic(peer="127.0.0.1", msgs=5), *sudp],
                               needs_allocation=True)
            self.refusal_check("strict_loopback_relay_ipv6", r"error 403[^\n]*",
                               ["-x", "-c", *self.auth(), *self.traffic(peer="::1", msgs=5), *sudp],
                               needs_allocation=True)
            self.probe_check("strict_peer_policy_ipv4", o.strict_host, o.strict_port, False,
                             o.strict_v4.split())
            self.probe_check("strict_peer_policy_ipv6", o.strict_host, o.strict_port, True,
                             o.strict_v6.split())
        else:
            for name in ("strict_loopback_relay", "strict_loopback_relay_ipv6",
                         "strict_peer_policy_ipv4", "strict_peer_policy_ipv6"):
                if self.wanted(name):
                    self.result("SKIP", name, "no --strict-host/--strict-port")

        if self.wanted("load_udp_relay"):
            self.load(udp)

        n = sum(self.counts.values())
        verdict = "OK" if self.counts["FAIL"] == 0 else "FAILED"
        print(f"SUMMARY: {self.counts['PASS']} passed, {self.counts['FAIL']} failed, "
              f"{self.counts['SKIP']} skipped ({n} checks) in {time.monotonic() - t0:.0f} s -> {verdict}",
              flush=True)
        return 0 if self.counts["FAIL"] == 0 else 1

    def stun_binding(self):
        name, log = "stun_binding_udp", self.log_path("stun_binding_udp")
        o = self.opt
        try:
            done = subprocess.run(["turnutils_stunclient", "-p", str(o.udp_port), o.host],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
            text = done.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            text = "harness: turnutils_stunclient timed out\n"
        m = re.search(r"reflexive addr: (\S+)", text)
        # and the same with our own client, which also checks the answer's FINGERPRINT
        client = TurnClient(o.host, o.udp_port)
        try:
            mapped = client.binding()
            local = client.local_address()
            own = f"own client mapped {mapped[0]}:{mapped[1]}, local {local[0]}:{local[1]}"
            own_ok = mapped == local or not ipaddress.ip_address(o.host).is_loopback
        except ProtocolError as e:
            own, own_ok = f"own client: {e}", False
        finally:
            client.close()
        log.write_text(text + own + "\n")
        if m and own_ok:
            self.result("PASS", name, f"XOR-MAPPED-ADDRESS {m.group(1)} (stunclient); {own}")
        else:
            theirs = m.group(1) if m else "no reflexive address"
            self.result("FAIL", name, f"stunclient: {theirs}; {own} [log {log}]")

    def rtp_rtcp_pair(self, udp: list[str]):
        """uclient without -c allocates an RTP relay with EVEN-PORT (R bit set), gets a
        RESERVATION-TOKEN, then allocates the RTCP relay with that token: it must get the next
        (odd) port, and both sessions carry traffic."""
        name = "udp_rtp_rtcp_pair"
        run = self.uclient(name, [*self.auth(), *self.traffic(), *udp])
        status, detail = self.judge_relay(run, 2 * self.opt.msgs, self.opt.max_loss)
        # each allocation logs "Received relay addr: IP:PORT" and then "rtv=<token or 0>"
        pairs = re.findall(r"Received relay addr: \S+?:(\d+)\s*\n[^\n]*rtv=(\d+)", run.text)
        ports = [int(p) for p, _ in pairs]
        reserved = [int(p) for p, token in pairs if int(token) != 0 and int(p) % 2 == 0]
        pair = next((p for p in reserved if p + 1 in ports), None)
        if status == "PASS" and run.stats.sessions < 2:
            status, detail = "FAIL", f"only {run.stats.sessions} session(s), no RTCP [log {run.log}]"
        elif status == "PASS" and pair is None:
            status, detail = "FAIL", (f"no even relay port with a RESERVATION-TOKEN followed by its odd "
                                      f"neighbour (relay ports {ports}) [log {run.log}]")
        elif status == "PASS":
            detail = f"relay ports {pair}/{pair + 1} (token); {detail}"
            self.good_allocation = True
        self.result(status, name, detail)

    def probe_can_fail(self):
        name, peer = "probe_can_fail", self.opt.accepted_peer
        if not peer:
            self.result("SKIP", name, "no --accepted-peer")
            return
        ipv6 = ipaddress.ip_address(peer).version == 6
        status, detail = self.probe(self.log_path(name), self.opt.host, self.opt.udp_port, ipv6,
                                    [peer], control=None)
        if status == "FAIL" and "MISMATCH" in detail and "ACCEPTED" in detail:
            self.result("PASS", name, f"{peer}, allowed by this server, was reported ACCEPTED (MISMATCH)")
        else:
            self.result("FAIL", name, f"the probe did not flag allowed peer {peer}: {status} {detail}")

    def load(self, udp: list[str]):
        o, name = self.opt, "load_udp_relay"
        run = self.uclient(name, ["-m", str(o.load_clients), "-n", str(o.load_msgs), "-l", str(o.msg_len),
                                  "-z", str(o.load_interval_ms), "-e", o.peer_addr, "-r", str(o.peer_port),
                                  "-c", "-g", *self.auth(), *udp], timeout=o.load_timeout)
        s = run.stats
        status, detail = self.judge_relay(run, o.load_clients * o.load_msgs, o.load_max_loss)
        secs = max(run.wall, 1e-3)
        kbits = s.received_bytes * 8 / secs / 1000
        figures = (f"clients={o.load_clients} every {o.load_interval_ms} ms, {s.received} echoed in "
                   f"{run.wall:.1f} s = {s.received / secs:.0f} msg/s {kbits:.0f} kbit/s each way")
        self.result(status, name, f"{figures}; {detail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", required=True, help="server address (an IP address)")
    ap.add_argument("--udp-port", type=int, required=True)
    ap.add_argument("--tcp-port", type=int, help="plain TCP listener (SKIP tcp_transport without)")
    ap.add_argument("--tls-port", type=int, help="TLS listener (SKIP tls_transport without)")
    ap.add_argument("--tls-port-accepts-tcp", action="store_true",
                    help="the TLS port also takes plain TCP (first-byte detection): run tcp_on_tls_port")
    ap.add_argument("--dtls-port", type=int, help="DTLS listener (SKIP dtls_transport without)")
    ap.add_argument("--ca-file", help="verify the TLS certificate with this CA file (uclient -E)")
    ap.add_argument("--secret-file", required=True, help="file whose first line is the TURN REST secret")
    ap.add_argument("--user", default="harness", help="user part of REST usernames")
    ap.add_argument("--peer-addr", default="127.0.0.1", help="UDP echo peer (turnutils_peer)")
    ap.add_argument("--peer-port", type=int, default=3480)
    ap.add_argument("--strict-host", help="a second server with the production peer policy")
    ap.add_argument("--strict-port", type=int)
    ap.add_argument("--forbidden-v4", help="IPv4 peers the main server must refuse (spaces)",
                    default="0.0.0.0 0.1.2.3 169.254.169.254 224.0.0.1 255.255.255.255 "
                    "10.0.0.1 172.16.0.1 192.168.0.1 100.64.0.1")
    ap.add_argument("--forbidden-v6", help="IPv6 peers the main server must refuse, on an IPv6 relay",
                    default=":: ::ffff:10.0.0.1 ::10.0.0.1 64:ff9b::a9fe:a9fe 2002:c0a8:1::1 "
                    "fe80::1 fd00::1 ff02::1 2001:db8::1")
    ap.add_argument("--strict-v4", default="127.0.0.1 127.0.0.2",
                    help="IPv4 peers the strict server must refuse")
    ap.add_argument("--strict-v6", help="IPv6 peers the strict server must refuse",
                    default="::1 ::ffff:127.0.0.1 ::127.0.0.1 64:ff9b::7f00:1 2002:7f00:1::1 ::")
    ap.add_argument("--control-peer-v4", default="8.8.8.8",
                    help="public address the policy allows; only permission state is created for it")
    ap.add_argument("--control-peer-v6", default="2606:4700::1111")
    ap.add_argument("--accepted-peer", help="an address the main server is configured to allow "
                    "(e.g. with --allow-peer); enables the probe_can_fail self-test")
    ap.add_argument("--msgs", type=int, default=30)
    ap.add_argument("--msg-len", type=int, default=170)
    ap.add_argument("--max-loss", type=float, default=1.0, help="percent")
    ap.add_argument("--load-clients", type=int, default=10)
    ap.add_argument("--load-msgs", type=int, default=300)
    ap.add_argument("--load-interval-ms", type=int, default=20)
    ap.add_argument("--load-max-loss", type=float, default=1.0, help="percent")
    ap.add_argument("--uclient-timeout", type=float, default=60)
    ap.add_argument("--load-timeout", type=float, default=300)
    ap.add_argument("--log-dir", help="where raw output is kept (default: a new temp dir)")
    ap.add_argument("--only", nargs="*", help="run only checks matching these names or globs "
                    "(the reject_wrong_secret/reject_expired_cred checks need udp_relay_channel too)")
    opt = ap.parse_args(argv)

    missing = [t for t in ("turnutils_uclient", "turnutils_stunclient") if shutil.which(t) is None]
    if missing:
        print(f"missing {' '.join(missing)} (Debian package coturn)", file=sys.stderr)
        return 2
    opt.log_dir = opt.log_dir or tempfile.mkdtemp(prefix="turn-harness.")
    Path(opt.log_dir).mkdir(parents=True, exist_ok=True)
    return Harness(opt).run()


if __name__ == "__main__":
    sys.exit(main())
