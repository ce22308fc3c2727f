"""What the webhook's server stack costs with no work to do: the floor under `cpu_ms_per_pod`.

Serves two do-nothing admission endpoints with the settings `multinic-ipam serve` gives gunicorn
(gthread, 1 worker x 16 threads, TLS, keep-alive, no access log) and posts pod AdmissionReviews of
the size the API server sends from 8 keep-alive clients, measuring the worker's CPU per request:
- `flask`: a Flask app that reads the body, parses it and answers `allowed` with `jsonify`, as our
  routes do before and after deciding;
- `wsgi`: the same work as a bare WSGI callable under the same gunicorn, without Flask.

A pod is two reviews (mutate, then validate), so `flask_ms_per_pod` is what `benchmarks/admission.py`'s
`cpu_ms_per_pod.webhook` cannot go below while the webhook is a Flask app under gunicorn (DESIGN.md),
on this machine. No control plane needed.

Prints one JSON object: ``{"requests", "clients", "body_bytes", "flask": {"cpu_ms_per_request",
"per_s"}, "wsgi": {...}, "flask_ms_per_pod", "wsgi_ms_per_pod"}`` (medians of --rounds runs).
Usage: `python benchmarks/floors.py [--requests N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENTS = 8
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
GUNICORN_SETTINGS = """\
bind = ["127.0.0.1:{port}"]
certfile = "{cert}"
keyfile = "{key}"
worker_class = "gthread"
workers = 1
threads = 16
keepalive = 30
accesslog = None
"""


def flask_app() -> Any:
    """The do-nothing review endpoint as a Flask app (gunicorn: `floors:flask_app()`)."""
    from flask import Flask, jsonify, request

    from webhook import codec

    app = Flask("floors")

    @app.post("/review")
    def review() -> Any:
        body = codec.loads(request.get_data(cache=False))
        return jsonify(_answer(body)), 200

    return app


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The same endpoint as a bare WSGI callable (gunicorn: `floors:wsgi_app`)."""
    from webhook import codec

    body = codec.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    out = codec.dumps(_answer(body)) + b"\n"
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": body["request"]["uid"], "allowed": True}}


def pod_review(i: int) -> bytes:
    """A pod CREATE review about as large as the API server's for the guide's samplepod."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"bench-{i}", "namespace": "default",
                        "annotations": {"k8s.v1.cni.cncf.io/networks": "default/macvlan"}},
           "spec": {"containers": [{"name": "samplepod", "image": "docker.io/library/alpine",
                                    "command": ["/bin/ash", "-c", "trap : TERM INT; sleep infinity & wait"],
                                    "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                    "terminationMessagePolicy": "File", "imagePullPolicy": "Always",
                                    "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                                      "mountPath": SERVICE_ACCOUNT_MOUNT}]}],
                    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
                    "securityContext": {}, "schedulerName": "default-scheduler",
                    "tolerations": [{"key": f"node.kubernetes.io/{t}", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 300}
                                    for t in ("not-ready", "unreachable")],
                    "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
           "status": {}}
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": f"u{i}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                    "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": "default", "operation": "CREATE",
                    "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                                 "uid": "8a4f4a3c-4d5e-4f60-8a71-9b2c3d4e5f60",
                                 "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                            "system:authenticated"]},
                    "object": pod, "oldObject": None, "dryRun": False,
                    "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}},
    }).encode()


def worker_cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def post_many(port: int, context: ssl.SSLContext, indices: range) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    for i in indices:
        conn.request("POST", "/review", body=pod_review(i), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200 or b'"allowed":true' not in answer:
            raise RuntimeError(f"unexpected answer {response.status}: {answer[:200]!r}")
    conn.close()


def serving(app: str, paths: Any, port: int) -> subprocess.Popen[bytes]:
    """gunicorn serving `app` (a `floors` attribute) with serve's settings, once it answers."""
    conf = paths.cert_dir / f"{port}.conf.py"
    conf.write_text(GUNICORN_SETTINGS.format(port=port, cert=paths.cert, key=paths.key))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(conf), "--pythonpath",
         f"{Path(__file__).parent},{ROOT}", app],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    context = ssl._create_unverified_context()  # our own throwaway certificate
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            post_many(port, context, range(1))
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"gunicorn serving {app} did not answer within 30 s")


def worker_of(arbiter: int) -> int:
    children = Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split()
    if not children:
        raise RuntimeError("gunicorn has no worker")
    return int(children[0])


def measure(port: int, worker: int, requests: int) -> tuple[float, float]:
    """(worker CPU ms per request, requests per second) for `requests` posts from CLIENTS threads."""
    context = ssl._create_unverified_context()
    threads = [threading.Thread(target=post_many, args=(port, context, range(k, requests, CLIENTS)))
               for k in range(CLIENTS)]
    cpu, began = worker_cpu_ms(worker), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return (worker_cpu_ms(worker) - cpu) / requests, requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each; medians reported")
    args = parser.parse_args()

    from certs.generate import write_certificates

    with tempfile.TemporaryDirectory(prefix="floors-") as tmp:
        paths = write_certificates(Path(tmp), ["127.0.0.1"])
        servers = {"flask": serving("floors:flask_app()", paths, 18461),
                   "wsgi": serving("floors:wsgi_app", paths, 18462)}
        ports = {"flask": 18461, "wsgi": 18462}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        try:
            workers = {name: worker_of(process.pid) for name, process in servers.items()}
            for _ in range(args.rounds):
                for name in servers:
                    samples[name].append(measure(ports[name], workers[name], args.requests))
        finally:
            for process in servers.values():
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
    result: dict[str, Any] = {"requests": args.requests, "clients": CLIENTS, "body_bytes": len(pod_review(0))}
    for name, runs in samples.items():
        result[name] = {"cpu_ms_per_request": round(statistics.median(r[0] for r in runs), 3),
                        "per_s": round(statistics.median(r[1] for r in runs), 1)}
        result[f"{name}_ms_per_pod"] = round(2 * result[name]["cpu_ms_per_request"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
