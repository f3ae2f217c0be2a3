"""`parallax inspect [ELEMENT]`: the registry's elements, or one element described, in
gst-inspect-1.0's layout (`none` under a heading with nothing to list, as it prints)."""

from __future__ import annotations

import argparse
from typing import TextIO

from parallax.pipeline import registry


def inspect(args: argparse.Namespace, out: TextIO) -> int:
    """List every element, or describe `args.element`; returns the exit status.

    Raises:
        UnknownElement: no element of that name (the message suggests the closest).
    """
    if not args.element:
        for name in registry.names():
            cls = registry.get(name)
            print(f"{name:>14}: {cls.description}", file=out)
        print(f"\nTotal count: {len(registry.names())} elements", file=out)
        return 0
    cls = registry.get(args.element)
    print(f"Factory Details:\n  Name: {args.element}\n  Klass: {cls.klass}", file=out)
    print(f"  Description: {cls.description}", file=out)
    print(f"  Class: {cls.__module__}.{cls.__qualname__}\n\nPad Templates:", file=out)
    if not cls.pad_templates:
        print("  none", file=out)
    for t in cls.pad_templates:
        print(f"  {t.direction.value.upper()} template: '{t.name}'", file=out)
        print(f"    Availability: {t.presence.value}\n    Capabilities: {t.caps}", file=out)
    print("\nElement Properties:", file=out)
    if not cls.properties():
        print("  none", file=out)  # as gst-inspect-1.0 prints it
    for prop in cls.properties():
        default = prop.to_string(prop.default)
        print(f"  {prop.name:<20}: {prop.doc}", file=out)
        print(f"  {'':<20}  {prop.expects()}. Default: {default}", file=out)
    return 0
