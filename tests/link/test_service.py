"""Service names of the shared-memory link: the address, trust by uid, who holds a name."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from parallax.link._service import Credentials, Trust, address, bind, holder, peer_credentials


def test_address_is_abstract_and_per_uid() -> None:
    assert address("cam") == f"\0parallax/{os.getuid()}/cam"
    assert address("cam", 1234) == "\0parallax/1234/cam"
    for bad in ("", "a\0b", "x" * 65):
        with pytest.raises(ValueError, match="service name must be 1-64 characters"):
            address(bad)


def test_trust_defaults_to_our_uid() -> None:
    trust = Trust.of(None)
    assert trust.uids == {os.getuid()}
    assert trust.admits(Credentials(1, os.getuid(), 0))
    assert not trust.admits(Credentials(1, os.getuid() + 1, 0))
    assert str(trust) == f"uid {os.getuid()}"


def test_trust_searches_our_name_space_first_and_only_trusted_ones() -> None:
    me = os.getuid()
    assert Trust.of({me + 7, me, me + 3}).name_spaces() == (me, me + 3, me + 7)
    assert Trust.of({me + 7, me + 3}).name_spaces() == (me + 3, me + 7)
    assert str(Trust.of({3, 1})) == "one of uids 1, 3"


@pytest.mark.parametrize(
    ("uids", "match"),
    [
        ([], "empty: nobody could connect"),
        ([-1], "-1 is not a uid"),
        ([2**32 - 1], "4294967295 is not a uid"),
        ([1.0], "1.0 is not a uid"),
        ([False], "False is not a uid"),
        ("1000", "takes uids \\(ints\\), not a string"),
    ],
)
def test_trust_refuses_what_is_not_a_uid(uids: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Trust.of(uids)  # type: ignore[arg-type]


def test_trust_from_launch_text() -> None:
    assert Trust.parse("") == Trust.of(None)
    assert Trust.parse(" 0, 1000 ").uids == {0, 1000}
    with pytest.raises(ValueError, match="allowed-uids: 'root' is not a uid"):
        Trust.parse("0,root")


def test_peer_credentials_are_the_kernels() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        assert peer_credentials(a) == Credentials(os.getpid(), os.getuid(), os.getgid())


def test_bind_names_the_holder_of_a_taken_name() -> None:
    service = f"test-service-{os.getpid()}-taken"
    first = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    second = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with first, second:
        bind(first, service)
        first.listen(1)
        assert holder(address(service)) is not None
        with pytest.raises(OSError, match=f"service {service!r} is already published") as info:
            bind(second, service)
        assert info.value.errno == errno.EADDRINUSE
        assert f"held by pid {os.getpid()} (this process, " in str(info.value)
        assert f"(abstract socket @parallax/{os.getuid()}/{service})" in str(info.value)
    assert holder(address(service)) is None  # gone with the socket


def test_an_unknown_name_has_no_holder() -> None:
    assert holder(address(f"test-service-{os.getpid()}-nobody")) is None
