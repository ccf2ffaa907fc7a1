"""Property tests against the pure PKI: any valid name or IP lands in the certificate's SANs.
One CA and one key for every example, so each example costs one signature (thousands run)."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress

from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from isobuilder import keys, pki
from isobuilder.identities import kubelet_spec
from isobuilder.model import KeyType, Node, Role, is_ip

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
# RFC 1123 labels, built from characters (hypothesis' from_regex costs ~20 ms an example)
label = st.sampled_from(ALNUM) | st.tuples(
    st.sampled_from(ALNUM), st.text(ALNUM + "-", max_size=10), st.sampled_from(ALNUM)
).map("".join)
names = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda n: len(n) <= 52)
# A DNS SAN's last label has a letter (else it is a mistyped IP, refused); a node name is no IP.
san_names = names.filter(lambda n: any(c.isalpha() for c in n.rsplit(".", 1)[-1]))
node_names = names.filter(lambda n: not is_ip(n))
ips = st.ip_addresses().filter(
    lambda a: (
        not (a.is_loopback or a.is_multicast or a.is_link_local or a.is_unspecified)
        and not (isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped)
        and str(a) != "255.255.255.255"
    )
)


@functools.cache
def _ca() -> tuple[pki.KeyPair, keys.PrivateKey]:
    key = keys.generate_key(KeyType.ECDSA_P256)
    return pki.issue_ca("kubernetes", key, NOW, 3650), keys.generate_key(KeyType.ECDSA_P256)


@settings(max_examples=1500, deadline=None)
@given(node_names, ips, st.lists(san_names | ips.map(str), max_size=3))
def test_any_valid_name_and_ip_land_in_the_kubelet_certificate(
    name: str, ip: ipaddress._BaseAddress, sans: list[str]
) -> None:
    from isobuilder import checks

    node = Node(name, checks.check_ip(str(ip)), Role.WORKER, sans=checks.check_sans(sans))
    ca, key = _ca()
    cert = pki.issue_leaf(kubelet_spec(node), key, ca, NOW, 365).cert
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = ext.get_values_for_type(x509.DNSName)
    addresses = {str(a) for a in ext.get_values_for_type(x509.IPAddress)}
    assert (name in dns or name in addresses) and node.ip in addresses  # a name like 10.0.0.1 is an IP SAN
    assert all(s in dns or s in addresses for s in node.sans)
    assert cert.subject.rfc4514_string() == f"CN=system:node:{name},O=system:nodes"
    assert pki.signed_by(cert, ca.cert) and pki.same_spec(pki.spec_of(cert), kubelet_spec(node))
