"""What every example shares: one command line for the three sources a strategy runs on."""

from __future__ import annotations

import argparse

from wiretick.host.decode import DecodeConfig
from wiretick.host.sources import CaptureSource, ReplaySource, RingSource


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("source", help="a capture (pcap/pcapng), or with --ring the name of a tick ring")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--replay", action="store_true",
                     help="replay the capture through the software device into a ring, and follow that")
    how.add_argument("--ring", action="store_true", help="follow the ring SOURCE (/dev/shm/SOURCE or a path)")
    p.add_argument("--no-ip-checksum", action="store_true", help="for captures whose IPv4 checksums were zeroed")
    return p


def open_source(args: argparse.Namespace):
    """The same strategy code runs on each: a ring, the replay device, or the capture decoded here."""
    config = DecodeConfig(check_ip_checksum=not args.no_ip_checksum)
    if args.ring:
        return RingSource(args.source)
    if args.replay:
        return ReplaySource(args.source, config=config)
    return CaptureSource(args.source, config=config)
