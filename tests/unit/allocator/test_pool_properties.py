"""Property test (issue 9): for random Subnets (IPv4, IPv6, dual; excludes; gateway), random IPPools
and random sequences of pod creates and deletes (ordinary, fixed, literal pool, named pool,
ip_family), no address is ever given twice, never outside its rules, and pool addresses go only to
their pools."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import pools
from allocator.addresses import format_ip, parse_ip
from allocator.errors import AllocatorError
from allocator.family import PoolDef
from allocator.subnet import Subnet
from allocator.subnet_spec import SubnetSpec

BLOCKS = {4: ("10.0.0.0/27", parse_ip("10.0.0.0")[1]), 6: ("fd00::/123", parse_ip("fd00::")[1])}


@st.composite
def subnets(draw: st.DrawFn) -> tuple[Subnet, dict[str, set[tuple[int, int]]]]:
    families = draw(st.sampled_from([(4,), (6,), (4, 6)]))
    spec: dict = {"cidrBlock": ",".join(BLOCKS[f][0] for f in families)}
    gateways = {f: draw(st.integers(1, 30)) for f in families}
    spec["gateway"] = ",".join(format_ip(f, BLOCKS[f][1] + gateways[f]) for f in families)
    excludes = []
    for family in families:
        for low in draw(st.lists(st.integers(0, 31), max_size=3)):
            high = min(31, low + draw(st.integers(0, 3)))
            base = BLOCKS[family][1]
            excludes.append(f"{format_ip(family, base + low)}..{format_ip(family, base + high)}")
    spec["excludeIps"] = excludes
    subnet = Subnet(SubnetSpec.parse("net", spec))
    # up to three pools over disjoint offset ranges, some namespaced
    cuts = sorted(draw(st.lists(st.integers(0, 31), min_size=0, max_size=6, unique=True)))
    defs, members = [], {}
    for index, (low, high) in enumerate(zip(cuts[::2], cuts[1::2], strict=False)):
        name = f"pool-{index}"
        ranges = tuple((f, BLOCKS[f][1] + low, BLOCKS[f][1] + high) for f in families)
        defs.append(PoolDef(name, ranges, namespaces=("ns-bound",) if index == 0 else ()))
        members[name] = {(f, v) for f, lo, hi in ranges for v in range(lo, hi + 1)}
    subnet.set_pools(defs)
    return subnet, members


operation = st.one_of(
    st.tuples(st.just("plain"), st.sampled_from([None, (4,), (6,), (4, 6)]), st.none()),
    st.tuples(st.just("named"), st.sampled_from([None, (4,), (6,)]), st.sampled_from(["pool-0", "pool-1"])),
    st.tuples(st.just("fixed"), st.sampled_from([4, 6]), st.integers(0, 31)),
    st.tuples(st.just("literal"), st.none(), st.lists(st.integers(0, 31), min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.none(), st.integers(0, 40)),
)


@settings(max_examples=400, deadline=None)
@given(world=subnets(), ops=st.lists(operation, max_size=40))
def test_no_address_twice_never_outside_its_rules_pool_addresses_only_to_their_pools(world, ops) -> None:
    subnet, members = world
    spec = subnet.spec
    pooled = {point for addresses in members.values() for point in addresses}
    given_out: dict[tuple[int, int], str] = {}  # (family, value) → owner, as the test saw it
    owners: list[str] = []
    for number, (kind, arg, extra) in enumerate(ops):
        owner = f"pod-{number}"
        try:
            if kind == "plain":
                got = subnet.allocate_all(owner, families=arg)
                for address in got:
                    point = parse_ip(str(address))
                    assert spec.why_unusable(address) == "", address
                    assert point not in pooled, f"{address} of an IPPool went to an ordinary pod"
            elif kind == "named":
                got = subnet.allocate_all(owner, families=arg, pool=extra)
                for address in got:
                    assert spec.why_unusable(address) == "", address
                    assert parse_ip(str(address)) in members.get(extra, set()), f"{address} not of {extra}"
            elif kind == "fixed":
                family, offset = arg, extra
                if family not in spec.rules:
                    continue
                address = format_ip(family, BLOCKS[family][1] + offset)
                got = subnet.allocate_all(owner, [address])
                assert spec.why_unusable(address, fixed=True) == ""
            elif kind == "literal":
                family = next(iter(spec.rules))
                entries = tuple((format_ip(family, BLOCKS[family][1] + o),) for o in dict.fromkeys(extra))
                entry = pools.choose_entry(
                    entries, ordinal=None, why_unusable=spec.why_unusable,
                    is_free=lambda e: all(subnet.holder(a) is None for a in e),
                )
                got = subnet.allocate_all(owner, entry)
                assert entry[0] in {str(a) for a in got}
                assert spec.why_unusable(entry[0]) == "", entry  # excludes win over pool lists
            else:
                if owners:
                    victim = owners[extra % len(owners)]  # gone: the store releases each of its IP objects
                    for point in [point for point, who in given_out.items() if who == victim]:
                        assert subnet.release(format_ip(*point)) == victim
                        del given_out[point]
                    owners.remove(victim)
                continue
        except AllocatorError:
            continue
        owners.append(owner)
        for address in got:
            point = parse_ip(str(address))
            assert given_out.get(point, owner) == owner, f"{address} given twice"
            given_out[point] = owner
    # what the allocator holds is exactly what the test saw handed out
    assert {point: subnet.holder(format_ip(*point)) for point in given_out} == given_out
    assert subnet.held_count == len(given_out)
