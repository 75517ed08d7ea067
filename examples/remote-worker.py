#!/usr/bin/env python3
"""A conveyor worker in Python, over the HTTP API, with the standard library only.

It long-polls for jobs, renews their leases while it works, completes or fails each one,
reports itself to the worker registry, and on SIGTERM/SIGINT finishes the job in hand,
gives back the jobs it has not started, and exits 0. docs/http-api.md explains each call.

    CONVEYOR_URL=http://127.0.0.1:8080 CONVEYOR_KEY=cvk_... CONVEYOR_QUEUES=email \
        python3 examples/remote-worker.py

Settings (environment): CONVEYOR_URL (default http://127.0.0.1:8080), CONVEYOR_KEY (a key
with the `consume` scope; none for a loopback server without keys), CONVEYOR_QUEUES
(comma-separated, required), CONVEYOR_BATCH (jobs per claim, default 5), CONVEYOR_LEASE_MS
(default 30000), CONVEYOR_WAIT_MS (long-poll, default 20000, at most 60000).

Replace handle() with your code. Exit codes: 0 after a signal, 1 on a configuration error.
"""
import json, os, signal, socket, sys, threading, time, traceback
import urllib.error, urllib.parse, urllib.request

URL = os.environ.get("CONVEYOR_URL", "http://127.0.0.1:8080").rstrip("/")
KEY = os.environ.get("CONVEYOR_KEY")
QUEUES = [q for q in os.environ.get("CONVEYOR_QUEUES", "").split(",") if q]
BATCH = int(os.environ.get("CONVEYOR_BATCH", "5"))
LEASE_MS = int(os.environ.get("CONVEYOR_LEASE_MS", "30000"))
WAIT_MS = int(os.environ.get("CONVEYOR_WAIT_MS", "20000"))
WORKER_ID = f"py:{socket.gethostname()}:{os.getpid()}"


class PermanentError(Exception):
    """Raise it from handle() to fail a job for good, whatever attempts it has left."""


def handle(job):
    """Your code: return any JSON value (the job's result), or raise to fail the attempt.
    This demo reads instructions from the job's data: {"sleepMs": n, "fail": "permanent" |
    "always" | "first-attempt"}."""
    data = job["data"] if isinstance(job["data"], dict) else {}
    time.sleep(data.get("sleepMs", 0) / 1000)
    if data.get("fail") == "permanent":
        raise PermanentError(f"job {job['id']} can never succeed")
    if data.get("fail") == "always" or (data.get("fail") == "first-attempt" and job["attempt"] == 1):
        raise RuntimeError(f"attempt {job['attempt']} of job {job['id']} failed")
    return {"echo": data, "by": WORKER_ID}


def log(msg):
    print(f"[{WORKER_ID}] {msg}", file=sys.stderr, flush=True)


class ApiError(Exception):
    def __init__(self, status, body):
        err = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"HTTP {status} {err.get('code')}: {err.get('message')}")
        self.status, self.code = status, err.get("code")


def call(method, path, body=None, timeout=10):
    """One API call: JSON in, JSON out; the one error shape becomes ApiError."""
    req = urllib.request.Request(URL + path, method=method, data=None if body is None else json.dumps(body).encode())
    if body is not None:
        req.add_header("content-type", "application/json")
    if KEY:
        req.add_header("authorization", f"Bearer {KEY}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            text = res.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        try:
            payload = json.loads(e.read() or b"null")
        except ValueError:
            payload = None
        raise ApiError(e.code, payload) from None


def job_path(job, action):
    return f"/api/v1/queues/{urllib.parse.quote(job['queue'], safe='')}/jobs/{urllib.parse.quote(job['id'], safe='')}/{action}"


held = {}  # id -> job: every job claimed and not yet acknowledged or released
held_lock = threading.Lock()
# Set by the signal handler, which touches no lock or Event (the main thread might hold it).
state = {"stopping": False, "idle": False}  # idle: waiting in a long poll or a pause, interruptible
done = threading.Event()  # set by the main thread when it leaves: stops the heartbeat thread


def heartbeats():
    """Renews every held lease each third of LEASE_MS (batched), and reports this worker every 15 s."""
    last_report = float("-inf")
    while not done.wait(LEASE_MS / 3000):
        with held_lock:
            items = [{"id": j["id"], "token": j["lease"]["token"], "queue": j["queue"]} for j in held.values()]
        try:
            if items:
                for r in call("POST", "/api/v1/leases/extend", {"items": items, "leaseMs": LEASE_MS})["results"]:
                    if r["status"] != "applied":  # expired and recovered, cancelled or finished: not ours any more
                        log(f"lease on job {r['id']} lost ({r['status']})")
                        with held_lock:
                            held.pop(r["id"], None)
            if time.monotonic() - last_report > 15:
                with held_lock:
                    active = len(held)
                call("POST", "/api/v1/workers/report", {"id": WORKER_ID, "host": socket.gethostname(), "pid": os.getpid(),
                                                        "queues": QUEUES, "concurrency": 1, "active": active})
                last_report = time.monotonic()
        except (ApiError, OSError) as e:
            log(f"heartbeat failed, will retry: {e}")


def acknowledge(job, result=None, error=None):
    """Completes or fails a job by its lease token; a 409 means the lease was lost (the job runs or ran elsewhere)."""
    if error is None:
        path, body = job_path(job, "complete"), {"token": job["lease"]["token"], "result": result}
    else:
        path = job_path(job, "fail")
        body = {"token": job["lease"]["token"], "retry": not isinstance(error, PermanentError),
                "error": {"message": str(error)[:10000], "name": type(error).__name__,
                          "stack": "".join(traceback.format_exception(error))[:100000]}}
    for pause in (0.5, 1, 2, 4, 8, 16):
        try:
            answer = call("POST", path, body)
            log(f"job {job['id']} " + ("completed" if error is None else f"failed ({error}), now {answer['state']}"))
            return
        except ApiError as e:
            if e.code in ("LEASE_LOST", "JOB_NOT_FOUND"):
                log(f"job {job['id']}: lease lost, result dropped")
                return
            if e.status < 500 and e.status != 429:
                raise
            log(f"acknowledging job {job['id']} failed, retrying: {e}")
        except OSError as e:
            log(f"acknowledging job {job['id']} failed, retrying: {e}")
        time.sleep(pause)
    log(f"gave up acknowledging job {job['id']}: it returns to the queue when its lease expires")


def release_held():
    with held_lock:
        items = [{"id": j["id"], "token": j["lease"]["token"]} for j in held.values()]
        held.clear()
    if items:
        try:
            call("POST", "/api/v1/leases/release", {"items": items})
            log(f"released {len(items)} unstarted job(s)")
        except (ApiError, OSError) as e:
            log(f"release failed ({e}): the jobs return when their leases expire")


class Shutdown(Exception):
    pass


def on_signal(signum, _frame):
    state["stopping"] = True
    # Idle in a long poll or a pause: stop waiting now. (Should a claim's answer already be on
    # its way, its jobs are never seen here and come back when their lease expires.)
    if state["idle"]:
        raise Shutdown()


def idle(fn, *args):
    """Runs fn (holding no lock) where a signal may interrupt it with Shutdown."""
    state["idle"] = True
    try:
        if state["stopping"]:
            raise Shutdown()
        return fn(*args)
    finally:
        state["idle"] = False


def claim():
    """Long-polls for up to BATCH jobs."""
    return call("POST", "/api/v1/claim", {"queues": QUEUES, "limit": BATCH, "leaseMs": LEASE_MS, "waitMs": WAIT_MS,
                                          "workerId": WORKER_ID}, timeout=WAIT_MS / 1000 + 10)["jobs"]


def main():
    if not QUEUES:
        log("set CONVEYOR_QUEUES, e.g. CONVEYOR_QUEUES=email,sms")
        return 1
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=heartbeats, daemon=True).start()
    log(f"claiming from {','.join(QUEUES)} at {URL}")
    pause = 0.5
    while not state["stopping"]:
        try:
            try:
                jobs = idle(claim)
                pause = 0.5
            except (ApiError, OSError) as e:  # OSError: server unreachable, connection reset, timeout
                if isinstance(e, ApiError) and e.status in (400, 401, 403, 404):
                    log(f"cannot claim: {e}")
                    done.set()
                    return 1
                log(f"claim failed, retrying in {pause}s: {e}")
                idle(time.sleep, pause)
                pause = min(pause * 2, 30)
                continue
        except Shutdown:
            break
        with held_lock:
            held.update((j["id"], j) for j in jobs)
        for job in jobs:
            if state["stopping"]:
                break  # the rest are released below
            with held_lock:
                if job["id"] not in held:
                    continue  # its lease was lost before it started
            try:
                result, error = handle(job), None
            except Exception as e:  # any failure of the handler fails the attempt
                result, error = None, e
            with held_lock:
                still_held = held.pop(job["id"], None) is not None
            if still_held:
                acknowledge(job, result, error)
            else:
                log(f"job {job['id']}: lease lost while running, result dropped")
        release_held()
    done.set()
    release_held()
    try:
        call("DELETE", f"/api/v1/workers/{urllib.parse.quote(WORKER_ID, safe='')}")
    except (ApiError, OSError):
        pass
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
