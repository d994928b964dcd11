"""``xdplug serve``: every route and error code, batch = single calls, hot reload with requests in flight.

A text strategy and BPR are fitted once on the synthetic fixture and written as artifacts;
``xdplug update`` writes the strategy's version 2. Most tests drive the Starlette app with
its TestClient (no network); the reload-under-load and shutdown tests run uvicorn on a
loopback port in a thread, and one test runs the real command in a subprocess (SIGHUP).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import xdplug
from xdplug.artifact import update_artifact, write_artifact
from xdplug.cli import main
from xdplug.serve.app import Limits, create_app
from xdplug.serve.holder import ModelHolder, newest_version
from xdplug.serve.metrics import Metrics

STRATEGY = {"name": "text", "encoder": "bert", "fusion": "text", "adaptation": "target-only",
            "params": {"model": {"dim": 16, "batch_users": 16}}}
TOKEN = "s3cret-token-of-24-chars"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(artifact_world):
    """The text strategy (version 1 and, after `update`, version 2) and BPR as artifacts."""
    world = artifact_world("serve", {"text": STRATEGY, "BPR": {"baseline": "BPR", "params": {"epochs": 1}}},
                           train={"epochs": 4, "learning_rate": 0.01, "stopping_step": 3},
                           evaluation={"ks": [5, 10], "valid_metric": "ndcg@10"},
                           folders={"text": "models/text", "BPR": "bpr"}, metrics={"text": {"test": {"ndcg@10": 0.5}}})
    paths, root = world["paths"], world["root"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDPLUG_HOME", str(root / "home"))
        rec = xdplug.load(paths["text"])
        rows = [(rec.users[u], rec.items[(7 * u + j) % len(rec.items)], 5) for u in range(20) for j in range(3)]
        new = root / "new.csv"
        pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(new, index=False)
        update_artifact(paths["text"], new, epochs=1)
        paths["text.v2"] = paths["text"].parent / "text.v2"
        assert paths["text.v2"].is_dir()
    return {**world, "rec": rec}


def ready(client, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health").status_code == 200:
            return client
        time.sleep(0.02)
    raise AssertionError(f"not ready: {client.get('/health').json()}")


@pytest.fixture(scope="module")
def client(world):
    with TestClient(create_app(world["paths"]["text"], limits=Limits(max_k=50, max_batch=8, max_body=4096),
                               handle_sighup=False)) as c:
        yield ready(c)


def post(client, path, payload, headers=None):
    return client.post(path, content=json.dumps(payload), headers={"content-type": "application/json", **(headers or {})})


def copy_series(world, tmp_path) -> Path:
    """A private copy of the text artifact (version 1 only) in its own folder."""
    target = tmp_path / "m"
    shutil.copytree(world["paths"]["text"], target)
    return target


# -- the routes ------------------------------------------------------------------------------

def test_recommend_a_known_user_as_the_library_does(client, world):
    rec = world["rec"]
    for user in rec.users[:3]:
        got = post(client, "/recommend", {"user": user, "k": 5})
        assert got.status_code == 200
        body = got.json()
        assert body["version"] == 1 and body["method"] == "text"
        assert body["items"] == json.loads(json.dumps(rec.recommend(user=user, k=5)))
    seen = post(client, "/recommend", {"user": rec.users[0], "k": 50, "exclude_seen": False}).json()["items"]
    assert len(seen) == len(rec.items) == 40  # every item, the seen ones included


def test_a_user_known_only_in_the_source_domain(client, world):
    data, rec = world["data"], world["rec"]
    source_only = [k for k in data.keys["source_items"] if k not in set(data.keys["target_items"])][:4]
    assert source_only
    got = post(client, "/recommend", {"history": source_only, "k": 5})
    assert got.status_code == 200
    items = [r["item"] for r in got.json()["items"]]
    assert len(items) == 5 and set(items) <= set(rec.items)
    assert got.json()["items"] == json.loads(json.dumps(rec.recommend(history=source_only, k=5)))


def test_batch_equals_single_calls(client, world):
    users = [world["rec"].users[i] for i in (4, 1, 4, 9)]
    got = post(client, "/recommend/batch", {"users": users, "k": 4})
    assert got.status_code == 200
    results = got.json()["results"]
    assert [r["user"] for r in results] == users and got.json()["version"] == 1
    for r in results:  # the same items; scores equal up to float32 summation order (a batch matmul)
        single = post(client, "/recommend", {"user": r["user"], "k": 4}).json()["items"]
        assert [i["item"] for i in r["items"]] == [i["item"] for i in single]
        assert np.allclose([i["score"] for i in r["items"]], [i["score"] for i in single], rtol=1e-5, atol=1e-6)


def test_batch_serves_users_known_only_in_the_source_as_single_calls_do(world, fit_context, tiny_config, plugin_manager,
                                                                       tmp_path):
    from xdplug.model.strategy import fit_strategy

    # a model that reads a user's source history (cross_domain_user): its artifact keeps the source
    entry = {"name": "joint", "encoder": "id", "fusion": "id", "adaptation": "joint",
             "params": {"model": {"dim": 8, "batch_users": 32, "cross_domain_user": "gate"}}}
    config = tiny_config(strategies=[entry])
    data, registry = fit_context.data, plugin_manager.registry
    folder = write_artifact(tmp_path / "joint", kind="strategy", method="joint", entry=config["strategies"][0],
                            seed=0, config=config, data=data, registry=registry,
                            scorer=fit_strategy(config["strategies"][0], registry, fit_context))
    targets = set(data.keys["target_users"])
    source_only = [key for i, key in enumerate(data.keys["source_users"])
                   if key not in targets and (data.source_train[:, 0] == i).any()][:2]
    assert len(source_only) == 2
    users = [source_only[0], data.keys["target_users"][3], source_only[1], source_only[0]]
    with TestClient(create_app(folder, handle_sighup=False)) as client:
        got = post(ready(client), "/recommend/batch", {"users": users, "k": 4})
        assert got.status_code == 200, got.json()
        results = got.json()["results"]
        assert [r["user"] for r in results] == users
        for r in results:
            single = post(client, "/recommend", {"user": r["user"], "k": 4})
            assert single.status_code == 200
            assert [i["item"] for i in r["items"]] == [i["item"] for i in single.json()["items"]]
            assert np.allclose([i["score"] for i in r["items"]], [i["score"] for i in single.json()["items"]],
                               rtol=1e-5, atol=1e-6)
    # where a single call refuses a source-only user (this target-only model keeps no source history),
    # the batch refuses them alike
    text = xdplug.load(world["paths"]["text"])
    with pytest.raises(xdplug.errors.ArtifactError) as single_error:
        text.recommend(user=source_only[0])
    with pytest.raises(xdplug.errors.ArtifactError) as batch_error:
        text.recommend_users(users=[source_only[0]])
    assert str(batch_error.value) == str(single_error.value)


def test_health_model_and_metrics(client, world):
    assert client.get("/health").json() == {"state": "ready", "version": 1, "method": "text"}
    model = client.get("/model").json()
    meta = json.loads((world["paths"]["text"] / "meta.json").read_text())
    assert model["method"] == "text" and model["kind"] == "strategy" and model["version"] == 1
    assert model["config_hash"] == meta["config_hash"] and model["metrics"] == {"test": {"ndcg@10": 0.5}}
    assert model["users"] == len(world["rec"].users) and model["admin_reload"] is False
    post(client, "/recommend", {"user": "nobody"})
    text = client.get("/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    ok = int(lines['xdplug_requests_total{method="POST",route="/recommend",code="200"}'])
    assert ok >= 1 and int(lines['xdplug_errors_total{code="404"}']) >= 1
    count = int(lines['xdplug_request_duration_seconds_count{route="/recommend"}'])
    assert int(lines['xdplug_request_duration_seconds_bucket{route="/recommend",le="+Inf"}']) == count >= ok + 1
    assert lines["xdplug_model_loaded"] == "1" and lines["xdplug_model_version"] == "1"
    assert "# TYPE xdplug_request_duration_seconds histogram" in text


@pytest.mark.parametrize("payload, status, message", [
    ({"user": "nobody"}, 404, "unknown user 'nobody': not one of the 80 target users of text"),
    ({"history": ["t1", "zzz", "yyy"]}, 400, "unknown items 'zzz', 'yyy': not in the catalog of text"),
    ({"history": []}, 400, "the history is empty: give at least one item ID"),
    ({"history": "t1"}, 400, "history must be a list of item IDs, not one string"),
    ({}, 400, 'give exactly one of "user" (a known target user) and "history"'),
    ({"user": "u1", "history": ["t1"]}, 400, 'give exactly one of "user"'),
    ({"user": "u1", "k": 0}, 400, "k must be a positive integer, got 0"),
    ({"user": "u1", "k": 2.5}, 400, "k must be a positive integer, got 2.5"),
    ({"user": "u1", "k": 51}, 400, "k must be at most 50 on this server (xdplug serve --max-k), got 51"),
    ({"user": "u1", "exclude_seen": "yes"}, 400, "exclude_seen must be true or false, got 'yes'"),
    ({"user": ["u1"]}, 400, 'user must be a string or an integer ID, got ["u1"]'),
    ({"user": "u1", "n": 3}, 400, "unknown key 'n' in the request; expected user, history, k, exclude_seen"),
])
def test_bad_requests_get_the_recommenders_messages(client, payload, status, message):
    got = post(client, "/recommend", payload)
    assert got.status_code == status and got.json()["status"] == status
    assert got.json()["error"].startswith(message), got.json()


def test_unknown_user_message_equals_the_cli(client, world, capsys):
    assert main(["recommend", str(world["paths"]["text"]), "--user", "nobody"]) == 2
    cli = capsys.readouterr().err.strip().removeprefix("error: ")
    assert post(client, "/recommend", {"user": "nobody"}).json()["error"] == cli


def test_malformed_and_oversized_bodies(client, world):
    bad = client.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("the request body is not JSON")
    nan = client.post("/recommend", content=b'{"user": "u1", "k": NaN}')
    assert nan.status_code == 400 and "NaN is not a JSON number" in nan.json()["error"]
    listed = post(client, "/recommend", ["u1"])
    assert listed.status_code == 400 and "must be a JSON object" in listed.json()["error"]
    big = post(client, "/recommend", {"history": ["t1"] * 2000})
    assert big.status_code == 413
    assert big.json()["error"].startswith("request body of 12") and "limit of 4096 bytes (xdplug serve --max-body)" in \
        big.json()["error"]
    chunked = client.post("/recommend", content=iter([b'{"history": [' + b'"t1",' * 1000, b'"t1"]}']))
    assert chunked.status_code == 413 and "over this server's limit of 4096 bytes" in chunked.json()["error"]
    many = post(client, "/recommend/batch", {"users": world["rec"].users[:9]})
    assert many.status_code == 413
    assert many.json()["error"] == "9 users in one batch is over this server's limit of 8 (xdplug serve --max-batch)"
    unknown = post(client, "/recommend/batch", {"users": [world["rec"].users[0], "nobody"]})
    assert unknown.status_code == 404 and unknown.json()["error"].startswith("unknown user 'nobody'")
    assert post(client, "/recommend/batch", {"users": []}).status_code == 400
    route = client.get("/nowhere")
    assert route.status_code == 404 and route.json()["error"].startswith("no route /nowhere; routes: /recommend")
    assert client.get("/recommend").status_code == 405


def test_baseline_without_a_history_path(world):
    with TestClient(create_app(world["paths"]["BPR"], handle_sighup=False)) as c:
        ready(c)
        got = post(c, "/recommend", {"history": ["t1"]})
        assert got.status_code == 400 and got.json()["error"].startswith("baseline 'BPR' has no inductive path")
        user = xdplug.load(world["paths"]["BPR"]).users[3]
        assert post(c, "/recommend", {"user": user, "k": 3}).json()["method"] == "BPR"


def test_503_while_loading_and_a_failed_first_load(world):
    gate = threading.Event()

    def slow(path):
        gate.wait(10)
        return xdplug.load(path)

    with TestClient(create_app(world["paths"]["text"], loader=slow, handle_sighup=False)) as c:
        for got in (c.get("/health"), post(c, "/recommend", {"user": "u1"}), c.get("/model")):
            assert got.status_code == 503 and got.json()["error"].startswith("the model is loading")
        assert c.get("/health").json()["state"] == "loading"
        assert "xdplug_model_loaded 0" in c.get("/metrics").text
        gate.set()
        ready(c)
    with TestClient(create_app(world["root"] / "missing", handle_sighup=False)) as c:
        deadline = time.monotonic() + 10
        while c.get("/health").json()["state"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        got = c.get("/health").json()
        assert got["state"] == "failed" and "no such artifact directory" in got["error"]


def test_request_timeout(world):
    class Slow:
        def __init__(self, rec):
            self.rec, self.users, self.items, self.meta = rec, rec.users, rec.items, rec.meta

        def check_user(self, user):
            return self.rec.check_user(user)

        def recommend(self, **kw):
            if kw.get("k") == 3:
                time.sleep(1.0)
            return self.rec.recommend(**kw)

    app = create_app(world["paths"]["text"], loader=lambda p: Slow(xdplug.load(p)), limits=Limits(timeout=0.2),
                     handle_sighup=False)
    with TestClient(app) as c:
        ready(c)
        got = post(c, "/recommend", {"user": world["rec"].users[0], "k": 3})
        assert got.status_code == 504
        assert got.json()["error"] == "the request took longer than this server's limit of 0.2 s (xdplug serve --timeout)"


# -- the admin endpoint and reloads -------------------------------------------------------------

def test_admin_is_off_without_a_token(client):
    got = post(client, "/admin/reload", {})
    assert got.status_code == 404 and got.json()["error"].startswith("the admin endpoint is off")


def test_reload_swaps_refuses_a_broken_version_and_enforces_the_token(world, tmp_path):
    folder = copy_series(world, tmp_path)
    user = world["rec"].users[0]
    auth = {"authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(folder, admin_token=TOKEN, handle_sighup=False)) as c:
        ready(c)
        assert post(c, "/recommend", {"user": user}).json()["version"] == 1
        assert post(c, "/admin/reload", {}).status_code == 401
        wrong = post(c, "/admin/reload", {}, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.json()["error"] == "wrong admin token"
        # nothing newer beside it: the same version is loaded again and checked
        assert post(c, "/admin/reload", {}, headers=auth).json()["version"] == 1
        # `xdplug update` wrote m.v2 beside m: a plain reload finds the newest version
        shutil.copytree(world["paths"]["text.v2"], tmp_path / "m.v2")
        swapped = post(c, "/admin/reload", {}, headers=auth)
        assert swapped.status_code == 200, swapped.json()
        assert swapped.json()["status"] == "swapped" and swapped.json()["version"] == 2
        assert swapped.json()["path"] == str(tmp_path / "m.v2") and swapped.json()["previous"]["version"] == 1
        assert post(c, "/recommend", {"user": user}).json()["version"] == 2
        # a broken version (a changed weights file) is refused; version 2 keeps serving
        broken = tmp_path / "broken"
        shutil.copytree(world["paths"]["text"], broken)
        (broken / "weights.pt").write_bytes(b"not tensors")
        refused = post(c, "/admin/reload", {"path": str(broken)}, headers=auth)
        assert refused.status_code == 422
        assert refused.json()["error"].startswith(f"refused: {broken / 'weights.pt'}: sha256 does not match")
        assert refused.json()["error"].endswith(f"still serving version 2 from {tmp_path / 'm.v2'}")
        assert post(c, "/recommend", {"user": user}).json()["version"] == 2
        model = c.get("/model").json()
        assert model["version"] == 2 and model["last_reload"]["status"] == "refused"
        assert model["last_reload"]["path"] == str(broken)
        text = c.get("/metrics").text
        assert 'xdplug_reloads_total{result="swapped"} 2' in text and 'xdplug_reloads_total{result="refused"} 1' in text
        # back to version 1 by path
        assert post(c, "/admin/reload", {"path": str(folder)}, headers=auth).json()["version"] == 1


def test_a_version_that_fails_its_smoke_check_is_refused(world):
    calls = []

    def loader(path):
        rec = xdplug.load(path)
        calls.append(path)
        if len(calls) > 1:
            rec.recommend = lambda **kw: [{"item": "t1", "score": float("nan"), "text": ""}]
        return rec

    holder = ModelHolder(world["paths"]["text"], loader=loader)
    holder.load_initial()
    record = holder.reload(world["paths"]["text.v2"])
    assert record["status"] == "refused" and "smoke check failed" in record["error"]
    assert holder.current.version == 1 and holder.current.path == world["paths"]["text"]


def test_newest_version(tmp_path):
    for name in ("m", "m.v2", "m.v10", "m.v3", "m.v11.tmp-abc", "mm.v12", "other.v20"):
        (tmp_path / name).mkdir()
    (tmp_path / "m.v12").write_text("a file, not a version")
    assert newest_version(tmp_path / "m") == tmp_path / "m.v10"
    assert newest_version(tmp_path / "m.v3") == tmp_path / "m.v10"
    assert newest_version(tmp_path / "other") == tmp_path / "other.v20"
    assert newest_version(tmp_path / "x") == tmp_path / "x"


def test_metrics_exposition_escapes_and_accumulates():
    m = Metrics()
    for seconds in (0.0005, 0.003, 0.003, 100.0):
        m.observe("GET", "/health", 200, seconds)
    m.observe("GET", 'a"b\\c', 503, 0.001)
    text = m.exposition({"loaded": True, "version": 3})
    assert 'xdplug_request_duration_seconds_bucket{route="/health",le="0.001"} 1' in text
    assert 'xdplug_request_duration_seconds_bucket{route="/health",le="0.005"} 3' in text
    assert 'xdplug_request_duration_seconds_bucket{route="/health",le="30.0"} 3' in text
    assert 'xdplug_request_duration_seconds_bucket{route="/health",le="+Inf"} 4' in text
    assert 'route="a\\"b\\\\c"' in text and 'xdplug_errors_total{code="503"} 1' in text
    assert "xdplug_model_version 3" in text


# -- a real server on loopback: reload under load, graceful shutdown ----------------------------

class LiveServer:
    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=10))
        self.server.install_signal_handlers = lambda: None  # not the main thread (uvicorn < 0.29)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        with httpx.Client(base_url=self.url, timeout=5) as c:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if c.get("/health").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError("the server did not become ready")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()


def test_reload_under_concurrent_requests_fails_none(world, tmp_path):
    folder = copy_series(world, tmp_path)
    users = world["rec"].users[:20]
    with LiveServer(create_app(folder, admin_token=TOKEN, workers=2, handle_sighup=False)) as live:
        stop, failures, versions = threading.Event(), [], []

        def client(n):
            seen = []
            with httpx.Client(base_url=live.url, timeout=10) as c:
                i = 0
                while not stop.is_set():
                    r = c.post("/recommend", json={"user": users[(n + i) % len(users)], "k": 5})
                    i += 1
                    if r.status_code != 200 or len(r.json()["items"]) != 5:
                        failures.append((r.status_code, r.text[:200]))
                    else:
                        seen.append(r.json()["version"])
            versions.append(seen)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        shutil.copytree(world["paths"]["text.v2"], tmp_path / "m.v2")
        with httpx.Client(base_url=live.url, timeout=60) as admin:
            got = admin.post("/admin/reload", json={}, headers={"authorization": f"Bearer {TOKEN}"})
        assert got.status_code == 200 and got.json()["version"] == 2
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:3]
    for seen in versions:  # every client saw version 1, then version 2, never back
        assert seen and seen[0] == 1 and seen[-1] == 2 and seen == sorted(seen), seen[:5]


def test_health_answers_during_scoring_and_shutdown_waits_for_requests_in_flight(world):
    started = threading.Event()

    class Slow:
        def __init__(self, rec):
            self.rec, self.users, self.items, self.meta = rec, rec.users, rec.items, rec.meta
            self.check_user = rec.check_user

        def recommend(self, **kw):
            if kw.get("k") == 3:
                started.set()
                time.sleep(1.0)
            return self.rec.recommend(**kw)

    app = create_app(world["paths"]["text"], loader=lambda p: Slow(xdplug.load(p)), handle_sighup=False)
    answers = []
    with LiveServer(app) as live:
        def slow_request():
            with httpx.Client(base_url=live.url, timeout=10) as c:
                answers.append(c.post("/recommend", json={"user": world["rec"].users[0], "k": 3}))

        t = threading.Thread(target=slow_request)
        t.start()
        assert started.wait(10)
        # scoring runs on the pool: the event loop answers /health while the slow request is scored
        with httpx.Client(base_url=live.url, timeout=10) as c:
            t0 = time.monotonic()
            assert c.get("/health").status_code == 200 and time.monotonic() - t0 < 0.5
    # leaving the block asked the server to stop while the request was being scored
    t.join(10)
    assert len(answers) == 1 and answers[0].status_code == 200 and len(answers[0].json()["items"]) == 3


# -- the command ---------------------------------------------------------------------------------

def test_cli_refuses_bad_options_before_loading(world, capsys, monkeypatch):
    path = str(world["paths"]["text"])
    monkeypatch.delenv("XDPLUG_TEST_TOKEN", raising=False)
    cases = [
        (["--admin-token-env", "XDPLUG_TEST_TOKEN"], "error: --admin-token-env XDPLUG_TEST_TOKEN: the environment "
                                                     "variable XDPLUG_TEST_TOKEN is not set or empty"),
        (["--workers", "0"], "error: --workers must be a positive integer, got 0"),
        (["--port", "70000"], "error: --port must be between 0 and 65535, got 70000"),
        (["--timeout", "nan"], "error: --timeout must be a positive number, got nan"),
    ]
    for extra, message in cases:
        assert main(["serve", path, *extra]) == 2
        assert capsys.readouterr().err.startswith(message)
    monkeypatch.setenv("XDPLUG_TEST_TOKEN", "short")
    assert main(["serve", path, "--admin-token-env", "XDPLUG_TEST_TOKEN"]) == 2
    assert "the token is 5 characters long; use at least 16" in capsys.readouterr().err
    assert main(["serve", str(world["root"] / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {world['root'] / 'nowhere'}: no such artifact directory")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", path, "--port", str(port)]) == 2
        assert capsys.readouterr().err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_cli_stops_with_the_error_when_the_first_load_fails(world, capsys, monkeypatch):
    from xdplug import artifact
    from xdplug.errors import ArtifactError

    def broken(path, device="cpu", registry=None):
        raise ArtifactError(f"{path}: cannot rebuild strategy 'text' from its spec: boom")

    monkeypatch.setattr(artifact, "load_artifact", broken)
    assert main(["serve", str(world["paths"]["text"]), "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"serving {world['paths']['text']} at http://127.0.0.1:")
    assert captured.err.strip().endswith(f"error: {world['paths']['text']}: cannot rebuild strategy 'text' from its "
                                         "spec: boom")


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX")
def test_the_command_serves_and_reloads_on_sighup(world, tmp_path):
    folder = copy_series(world, tmp_path)
    env = {**os.environ, "XDPLUG_HOME": str(world["root"] / "home"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xdplug.cli", "serve", str(folder), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {folder} at http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with httpx.Client(base_url=url, timeout=10) as c:
            deadline = time.monotonic() + 60
            while c.get("/health").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            user = world["rec"].users[0]
            assert c.post("/recommend", json={"user": user}).json()["version"] == 1
            assert c.post("/admin/reload", json={}).status_code == 404
            shutil.copytree(world["paths"]["text.v2"], tmp_path / "m.v2")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while c.get("/health").json()["version"] != 2 and time.monotonic() < deadline:
                assert c.post("/recommend", json={"user": user}).status_code == 200
                time.sleep(0.05)
            assert c.post("/recommend", json={"user": user}).json()["version"] == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        err = proc.stderr.read()
        assert "reloaded: serving text version 2 from" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_reload_thread_runs_at_a_lower_priority():
    from xdplug.serve.holder import RELOAD_NICE, lower_thread_priority

    seen = {}

    def probe():
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        seen["lowered"] = lower_thread_priority()
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - before
        seen["max"] = before + RELOAD_NICE >= 19

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert seen["lowered"] and (seen["delta"] == RELOAD_NICE or seen["max"])
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == os.getpriority(os.PRIO_PROCESS, 0)
