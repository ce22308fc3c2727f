"""`kube-ovn`: the CNI plugin. Dispatches CNI_COMMAND to cmd_add/cmd_del/cmd_check/… and prints
the result or a CNI error on stdout. Standard library only, so that every call starts fast.

As IPAM (`ipam.type: kube-ovn` under macvlan, host-device, bridge …) it only returns the pod's
addresses and routes; as the main plugin (`type: kube-ovn`) it also builds a veth for them.
"""

from __future__ import annotations

import sys

from cni import client, config, errors, jsonio, netconf_rules, result

TYPE_CHECKING = False  # as in cni.config: no `typing`, `io` or `collections` import at run time
if TYPE_CHECKING:
    import io
    from collections.abc import Callable, Mapping

    from cni.config import Environment, NetConf

Result = dict[str, object] | None


def _about(env: Environment, conf: NetConf) -> str:
    return f"pod {env.pod} provider {conf.provider}: "


def _allocation(env: Environment, conf: NetConf) -> result.Allocation:
    assert env.pod is not None  # parse_environment requires it for ADD and CHECK
    return client.allocation(conf.server_socket, {
        "namespace": env.pod.namespace, "name": env.pod.name, "provider": conf.provider,
        "ifname": env.ifname, "netns": env.netns, "container_id": env.container_id, "pod_uid": env.pod.uid,
        "nad_routes": list(conf.routes),
    })


def cmd_add(env: Environment, conf: NetConf) -> Result:
    allocation = _allocation(env, conf)
    if not conf.as_main:
        return result.build(conf.cni_version, allocation)
    from cni import netlink  # only the main plugin touches links: IPAM calls skip its imports

    assert env.pod is not None
    host = netlink.host_veth_name(env.pod.namespace, env.pod.name, env.ifname)
    try:
        if netlink.exists(host):  # left behind by a crashed earlier attempt for this pod
            netlink.delete(host=host)
        host_mac = netlink.create_veth(host=host, ifname=env.ifname, netns=env.netns,
                                       mac=allocation.mac, mtu=conf.mtu)
        netlink.configure(ifname=env.ifname, netns=env.netns, allocation=allocation)
        netlink.attach_ovs(host, f"{env.pod.name}.{env.pod.namespace}.{conf.provider}")
        container_mac = allocation.mac or netlink.link_mac(env.ifname, netns=env.netns)
    except errors.CniError as exc:
        try:
            netlink.delete(host=host, ifname=env.ifname, netns=env.netns)
        except errors.CniError as cleanup:
            exc.details = f"{exc.details}\nrollback also failed: {cleanup.msg}".strip()
        raise errors.CniError(_about(env, conf) + exc.msg, details=exc.details, code=exc.code) from None
    interfaces = [result.Interface(host, host_mac),
                  result.Interface(env.ifname, container_mac, sandbox=env.netns)]
    return result.build(conf.cni_version, allocation, interfaces=interfaces, ip_interface=1)


def cmd_del(env: Environment, conf: NetConf) -> Result:
    """Idempotent and releases nothing: addresses follow the pod's life, not the sandbox's."""
    if not conf.as_main:
        return None
    from cni import netlink

    host = netlink.host_veth_name(env.pod.namespace, env.pod.name, env.ifname) if env.pod else ""
    try:
        netlink.delete(host=host, ifname=env.ifname, netns=env.netns)
    except errors.CniError as exc:
        raise errors.CniError(f"pod {env.pod or '?'} provider {conf.provider}: {exc.msg}",
                              details=exc.details) from None
    return None


def cmd_check(env: Environment, conf: NetConf) -> Result:
    allocation = _allocation(env, conf)
    want = {ip.address for ip in allocation.ips}
    if conf.prev_result is not None:
        had = {ip.get("address") for ip in conf.prev_result.get("ips") or () if isinstance(ip, dict)}
        if had != want:
            raise errors.CniError(_about(env, conf) + f"prevResult has {sorted(had)} but the pod's "
                                  f"annotations say {sorted(want)}")
    if not conf.as_main:
        return None
    from cni import netlink

    try:
        state = netlink.inspect(env.ifname, netns=env.netns)
    except errors.CniError as exc:
        raise errors.CniError(_about(env, conf) + exc.msg, details=exc.details) from None
    problems = [f"address {a} is missing" for a in sorted(want - state.addresses)]
    if allocation.mac and allocation.mac.lower() != state.mac:
        problems.append(f"MAC is {state.mac}, expected {allocation.mac}")
    problems += [f"route {r['dst']} via {r.get('gw') or '(link)'} is missing"
                 for r in allocation.routes if (r["dst"], r.get("gw", "")) not in state.routes]
    if problems:
        raise errors.CniError(_about(env, conf) + f"{env.ifname} in {env.netns}: " + "; ".join(problems))
    return None


def cmd_status(env: Environment, conf: NetConf) -> Result:
    client.healthy(conf.server_socket)
    return None


def cmd_gc(env: Environment, conf: NetConf) -> Result:
    """Nothing to collect: the plugin keeps no state, and addresses are released with their pod."""
    return None


COMMANDS: dict[str, Callable[[Environment, NetConf], Result]] = {
    "ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc,
}


def run(environ: Mapping[str, str], stdin: bytes, out: io.TextIOBase) -> int:
    """One invocation: 0 with the result (if any) on `out`, or 1 with a CNI error on `out`."""
    supported = netconf_rules.SUPPORTED_VERSIONS
    cni_version = supported[-1]
    pod = None
    try:
        raw = config.load_json(stdin)
        if isinstance(raw.get("cniVersion"), str):
            cni_version = raw["cniVersion"]
        env = config.parse_environment(environ)
        pod = env.pod
        if env.command == "VERSION":
            output: Result = {"cniVersion": cni_version if cni_version in supported else supported[-1],
                              "supportedVersions": list(supported)}
        else:
            output = COMMANDS[env.command](env, config.parse_netconf(raw, env.command))
    except Exception as exc:  # even a bug has to reach the runtime as CNI error JSON
        error = exc if isinstance(exc, errors.CniError) else errors.CniError(f"the plugin failed: {exc!r}")
        if pod is not None and not error.msg.startswith("pod "):  # say which pod a bad config hit
            error.msg = f"pod {pod}: {error.msg}"
        out.write(jsonio.dumps(error.to_json(cni_version)))
        return 1
    if output is not None:
        out.write(jsonio.dumps(output))
    return 0


def environ() -> dict[str, str]:
    """`os.environ`, decoded the same way, without importing `os` (a millisecond of imports with -S)."""
    import posix  # built in and already loaded: os.environ is made from it

    encoding, handler = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    return {key.decode(encoding, handler): value.decode(encoding, handler)
            for key, value in posix.environ.items()}


def main() -> None:
    """Run, flush what was written, and end the process at once. Python's orderly shutdown (every
    module cleared, a last garbage collection) cost 2-3 ms of CPU, a sixth of a call, and has
    nothing to do here: no threads, no temporary files, descriptors the kernel closes."""
    import posix

    code = run(environ(), sys.stdin.buffer.read(), sys.stdout)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the runtime stopped reading: it must not take the call for a success
        code = code or 1
    posix._exit(code)


if __name__ == "__main__":
    main()
